//! Why an event was refused: a closed list of reason codes plus a sentence a person can act on.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// The closed list of rejection reasons (docs/architecture.md, "Rejections"). Metric labels come
/// from here, never from input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Reason {
    NotJson,
    PersonalNumber,
    MissingField,
    WrongType,
    UnknownType,
    UnknownField,
    UnknownValue,
    OutOfBounds,
    BadTimestamp,
    EmptyId,
    ConflictingDuplicate,
    NotAllowed,
    VoidNotAllowed,
    CrossField,
}

impl Reason {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Reason; 14] = [
        Reason::NotJson,
        Reason::PersonalNumber,
        Reason::MissingField,
        Reason::WrongType,
        Reason::UnknownType,
        Reason::UnknownField,
        Reason::UnknownValue,
        Reason::OutOfBounds,
        Reason::BadTimestamp,
        Reason::EmptyId,
        Reason::ConflictingDuplicate,
        Reason::NotAllowed,
        Reason::VoidNotAllowed,
        Reason::CrossField,
    ];

    /// The code used in replies, tables and the `reason` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NotJson => "not_json",
            Reason::PersonalNumber => "personal_number",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::UnknownType => "unknown_type",
            Reason::UnknownField => "unknown_field",
            Reason::UnknownValue => "unknown_value",
            Reason::OutOfBounds => "out_of_bounds",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::EmptyId => "empty_id",
            Reason::ConflictingDuplicate => "conflicting_duplicate",
            Reason::NotAllowed => "not_allowed",
            Reason::VoidNotAllowed => "void_not_allowed",
            Reason::CrossField => "cross_field",
        }
    }

    /// The reason with the given code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event: the reason, the field (a JSON path such as `data.channel`) and a
/// message that never quotes a value the personal-number guard has not passed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rejection {
    /// The closed reason code.
    pub reason: Reason,
    /// The JSON path of the offending field, when one field is at fault.
    pub field: Option<String>,
    /// A sentence for a person: what is wrong and what was expected.
    pub message: String,
    /// The event's id, when it could be read and the event passed the guard.
    pub event_id: Option<String>,
    /// The event's other field-level problems, after this first one, in the order the
    /// checks found them; with it, at most [`MAX_PROBLEMS`] in all.
    pub more: Vec<Problem>,
}

/// Most problems of one event reported (the first and up to 19 more): enough to fix an
/// event in one round, never a reply that grows with a hostile event's size.
pub const MAX_PROBLEMS: usize = 20;

/// One field-level problem of an event: the same three parts as a [`Rejection`]'s own.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Problem {
    /// The closed reason code.
    pub reason: Reason,
    /// The JSON path of the offending field, when one field is at fault.
    pub field: Option<String>,
    /// A sentence for a person, under the same rules as [`Rejection::message`].
    pub message: String,
}

impl Rejection {
    /// A rejection at `field`.
    pub fn at(reason: Reason, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: Some(field.to_owned()),
            message: message.into(),
            event_id: None,
            more: Vec::new(),
        }
    }

    /// A rejection of the whole event.
    pub fn whole(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: None,
            message: message.into(),
            event_id: None,
            more: Vec::new(),
        }
    }

    /// The same rejection, naming the event.
    pub fn with_event_id(mut self, id: Option<&str>) -> Self {
        self.event_id = id.map(str::to_owned);
        self
    }

    /// Every problem of the event, the first (this rejection's own) first.
    pub fn problems(&self) -> impl Iterator<Item = (Reason, Option<&str>, &str)> {
        std::iter::once((self.reason, self.field.as_deref(), self.message.as_str())).chain(
            self.more
                .iter()
                .map(|p| (p.reason, p.field.as_deref(), p.message.as_str())),
        )
    }

    /// The message as it is kept (the `rejected` tables, the dead-letter `message`
    /// header): the first problem's message (its reason and field have their own
    /// columns), then [`Rejection::others_text`].
    pub fn full_message(&self) -> Cow<'_, str> {
        if self.more.is_empty() {
            return Cow::Borrowed(&self.message);
        }
        Cow::Owned(format!("{}{}", self.message, self.others_text()))
    }

    /// ` | field: message (reason)` for each problem after the first (empty when there
    /// is none).
    pub fn others_text(&self) -> String {
        let mut out = String::new();
        for p in &self.more {
            let field = p.field.as_deref().unwrap_or("event");
            let _ = write!(out, " | {field}: {} ({})", p.message, p.reason);
        }
        out
    }
}

impl fmt::Display for Rejection {
    /// Every problem as `field: message (reason)`, separated by ` | `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (reason, field, message)) in self.problems().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            match field {
                Some(field) => write!(f, "{field}: {message} ({reason})")?,
                None => write!(f, "{message} ({reason})")?,
            }
        }
        Ok(())
    }
}
