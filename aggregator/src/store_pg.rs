//! The PostgreSQL store's former path, kept so callers (`src/`, the consumer) need not
//! change when the stores moved under [`crate::store`].

pub use crate::store::pg::{KafkaOffset, PgError, PgStore, SourcePosition, NOTIFY_CHANNEL};
