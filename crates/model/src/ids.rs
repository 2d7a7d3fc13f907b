//! Newtype identifiers. Construction from untrusted strings validates the charset and
//! length, so ids are safe to log, to use as Kafka keys and as SQL parameters.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} contains {ch:?}; allowed are letters, digits and : _ - .")]
    BadChar { what: &'static str, ch: char },
}

fn validate(what: &'static str, s: &str) -> Result<(), IdError> {
    const MAX: usize = 64;
    if s.is_empty() {
        return Err(IdError::Empty { what });
    }
    if s.chars().count() > MAX {
        return Err(IdError::TooLong { what, max: MAX });
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')))
    {
        return Err(IdError::BadChar { what, ch });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates an id from untrusted input.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate($what, &s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A gym (tenant).
    GymId,
    "gym_id"
);
id_type!(
    /// An athlete enrolled in a gym.
    AthleteId,
    "athlete_id"
);
id_type!(
    /// A sensor's hardware id (MAC or serial).
    SensorId,
    "sensor_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate_charset_and_length() {
        assert!(SensorId::parse("aa:bb:cc:01").is_ok());
        assert_eq!(
            SensorId::parse(""),
            Err(IdError::Empty { what: "sensor_id" })
        );
        assert!(matches!(
            AthleteId::parse("a b"),
            Err(IdError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            GymId::parse("x".repeat(65)),
            Err(IdError::TooLong { max: 64, .. })
        ));
    }
}
