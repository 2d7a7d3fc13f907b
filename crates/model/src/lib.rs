//! The domain vocabulary every liftguard crate shares.
//!
//! Invariants:
//! - Pure data: no I/O, no async, no clocks, no dependency on any other liftguard crate.
//! - Ids are newtypes so a gym id can never be passed where an athlete id is meant; their
//!   string forms are validated on construction from untrusted input.
//! - [`ErrorKind`] is the one error vocabulary; `liftguard-runtime` maps it to gRPC codes
//!   and HTTP statuses, so every crate reports failures in the same terms.

use std::fmt;

use serde::{Deserialize, Serialize};

mod ids;
pub use ids::{AthleteId, GymId, IdError, SensorId};

/// Where a sensor is worn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Placement {
    /// T12/L1: trunk inclination.
    Thoracolumbar,
    /// S1/S2: pelvic inclination.
    Sacrum,
}

impl Placement {
    pub const ALL: [Placement; 2] = [Placement::Thoracolumbar, Placement::Sacrum];

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Thoracolumbar => "thoracolumbar",
            Placement::Sacrum => "sacrum",
        }
    }

    /// The wire enum value (`liftguard.v1.Placement`).
    pub fn to_proto(self) -> i32 {
        match self {
            Placement::Thoracolumbar => 1,
            Placement::Sacrum => 2,
        }
    }

    pub fn from_proto(v: i32) -> Option<Self> {
        match v {
            1 => Some(Placement::Thoracolumbar),
            2 => Some(Placement::Sacrum),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "thoracolumbar" | "t12" | "THORACOLUMBAR" => Some(Placement::Thoracolumbar),
            "sacrum" | "s1" | "SACRUM" => Some(Placement::Sacrum),
            _ => None,
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exercises liftguard segments and scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Exercise {
    Deadlift,
    Squat,
    KettlebellSwing,
    Carry,
}

impl Exercise {
    pub const ALL: [Exercise; 4] = [
        Exercise::Deadlift,
        Exercise::Squat,
        Exercise::KettlebellSwing,
        Exercise::Carry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Exercise::Deadlift => "deadlift",
            Exercise::Squat => "squat",
            Exercise::KettlebellSwing => "kettlebell_swing",
            Exercise::Carry => "carry",
        }
    }

    /// The wire enum value (`liftguard.v1.Exercise`).
    pub fn to_proto(self) -> i32 {
        match self {
            Exercise::Deadlift => 1,
            Exercise::Squat => 2,
            Exercise::KettlebellSwing => 3,
            Exercise::Carry => 4,
        }
    }

    pub fn from_proto(v: i32) -> Option<Self> {
        match v {
            1 => Some(Exercise::Deadlift),
            2 => Some(Exercise::Squat),
            3 => Some(Exercise::KettlebellSwing),
            4 => Some(Exercise::Carry),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "deadlift" => Some(Exercise::Deadlift),
            "squat" => Some(Exercise::Squat),
            "kettlebell_swing" | "swing" | "kb_swing" => Some(Exercise::KettlebellSwing),
            "carry" => Some(Exercise::Carry),
            _ => None,
        }
    }
}

impl fmt::Display for Exercise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one error vocabulary. Each kind has exactly one gRPC code and one HTTP status
/// (see `liftguard-runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or out of range (gRPC INVALID_ARGUMENT, HTTP 400).
    InvalidArgument,
    /// No or bad credentials (UNAUTHENTICATED, 401).
    Unauthenticated,
    /// Credentials valid, but not for this resource (PERMISSION_DENIED, 403).
    PermissionDenied,
    /// The named thing does not exist (NOT_FOUND, 404).
    NotFound,
    /// It exists already in a conflicting form (ALREADY_EXISTS, 409).
    AlreadyExists,
    /// The request is valid but the system's state forbids it now, e.g. seq going
    /// backwards (FAILED_PRECONDITION, 412).
    FailedPrecondition,
    /// A value outside the accepted window, e.g. a timestamp too far in the future
    /// (OUT_OF_RANGE, 400).
    OutOfRange,
    /// Backpressure or a quota: retry later (RESOURCE_EXHAUSTED, 429).
    ResourceExhausted,
    /// A dependency (bus, database) is down: retry later (UNAVAILABLE, 503).
    Unavailable,
    /// A bug or an unexpected failure (INTERNAL, 500).
    Internal,
}

impl ErrorKind {
    /// The gRPC status code number (google.rpc.Code).
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorKind::InvalidArgument => 3,
            ErrorKind::Unauthenticated => 16,
            ErrorKind::PermissionDenied => 7,
            ErrorKind::NotFound => 5,
            ErrorKind::AlreadyExists => 6,
            ErrorKind::FailedPrecondition => 9,
            ErrorKind::OutOfRange => 11,
            ErrorKind::ResourceExhausted => 8,
            ErrorKind::Unavailable => 14,
            ErrorKind::Internal => 13,
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument | ErrorKind::OutOfRange => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists => 409,
            ErrorKind::FailedPrecondition => 412,
            ErrorKind::ResourceExhausted => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// A stable snake_case label, used as the `reason` label of reject metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::OutOfRange => "out_of_range",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Topic names on the bus (Kafka and embedded alike). Versioned with the payload schema.
pub mod topics {
    /// `EnrichedBatch`, key = athlete id.
    pub const SAMPLES: &str = "liftguard.samples.v1";
    /// `RepRecord`, key = athlete id.
    pub const REPS: &str = "liftguard.reps.v1";
    /// `KinematicsChunk`, key = athlete id.
    pub const KINEMATICS: &str = "liftguard.kinematics.v1";
    /// `AlertRecord`, key = athlete id.
    pub const ALERTS: &str = "liftguard.alerts.v1";
    /// `RiskRecord`, key = athlete id.
    pub const RISK: &str = "liftguard.risk.v1";
    /// `FlareUpReport`, key = athlete id (API → processor and sink).
    pub const FLAREUPS: &str = "liftguard.flareups.v1";
    /// Every topic the pipeline uses.
    pub const ALL: [&str; 6] = [SAMPLES, REPS, KINEMATICS, ALERTS, RISK, FLAREUPS];
}
