//! File import: NDJSON and CSV (UTF-8 or Shift_JIS) turned into raw events.
