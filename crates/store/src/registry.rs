//! Registry operations (gyms, API keys, athletes, sensors), written once for both SQL
//! dialects: the statements are identical except for the names of time columns
//! (`*_at` TIMESTAMPTZ on PostgreSQL, `*_us` INTEGER on SQLite), which the macro splices
//! in, and the time conversions `Self::db_time` / `Self::row_time` of each backend.
//!
//! Invariants:
//! - `gym_id == slug`; creating an existing gym returns it unchanged.
//! - API key secrets are never stored: only their SHA-256 (hex). `authenticate` finds a
//!   key by that hash and ignores revoked keys.
//! - An athlete id is generated once per `(gym_id, external_ref)`; enrolling again updates
//!   the athlete's data and keeps the id.
//! - A sensor belongs to the gym that registered it first, for life; the gym may rebind it
//!   to another of its athletes or placements.

macro_rules! registry_impl {
    ($ty:ty, $db:ty, created = $created:literal, updated = $updated:literal, revoked = $revoked:literal) => {
        impl $ty {
            pub(crate) async fn create_gym(
                &self,
                slug: &str,
                name: &str,
            ) -> Result<(Gym, bool), StoreError> {
                crate::common::check_slug(slug)?;
                crate::common::check_text("name", name)?;
                let now = Self::db_time(crate::common::now_us())?;
                let inserted = sqlx::query(concat!(
                    "INSERT INTO gyms (gym_id, slug, name, ",
                    $created,
                    ") VALUES ($1, $1, $2, $3) ON CONFLICT (gym_id) DO NOTHING RETURNING gym_id, slug, name, ",
                    $created
                ))
                .bind(slug)
                .bind(name)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = inserted {
                    tracing::info!(gym = slug, "gym created");
                    return Ok((Self::gym_from_row(&row)?, true));
                }
                let row = sqlx::query(concat!(
                    "SELECT gym_id, slug, name, ",
                    $created,
                    " FROM gyms WHERE gym_id = $1"
                ))
                .bind(slug)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("gym {slug} vanished")))?;
                Ok((Self::gym_from_row(&row)?, false))
            }

            fn gym_from_row(row: &Row) -> Result<Gym, StoreError> {
                Ok(Gym {
                    gym_id: row.try_get("gym_id")?,
                    slug: row.try_get("slug")?,
                    name: row.try_get("name")?,
                    created_us: Self::row_time(row, $created)?,
                })
            }

            pub(crate) async fn list_gyms(&self) -> Result<Vec<Gym>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT gym_id, slug, name, ",
                    $created,
                    " FROM gyms ORDER BY gym_id"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::gym_from_row).collect()
            }

            async fn require_gym(&self, gym: &GymId) -> Result<(), StoreError> {
                let found = sqlx::query("SELECT 1 FROM gyms WHERE gym_id = $1")
                    .bind(gym.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                match found {
                    Some(_) => Ok(()),
                    None => Err(StoreError::NotFound(format!("gym {gym}"))),
                }
            }

            pub(crate) async fn issue_api_key(
                &self,
                gym: &GymId,
                label: &str,
            ) -> Result<IssuedKey, StoreError> {
                crate::common::check_text("label", label)?;
                self.require_gym(gym).await?;
                let key_id = format!("k-{}", crate::common::random_hex(8)?);
                let secret = format!("lg_{key_id}_{}", crate::common::random_hex(32)?);
                sqlx::query(concat!(
                    "INSERT INTO api_keys (key_id, gym_id, label, secret_sha256, ",
                    $created,
                    ") VALUES ($1, $2, $3, $4, $5)"
                ))
                .bind(&key_id)
                .bind(gym.as_str())
                .bind(label)
                .bind(crate::common::sha256_hex(&secret))
                .bind(Self::db_time(crate::common::now_us())?)
                .execute(&self.pool)
                .await?;
                tracing::info!(gym = %gym, key_id, "api key issued");
                Ok(IssuedKey { key_id, secret })
            }

            pub(crate) async fn revoke_api_key(
                &self,
                gym: &GymId,
                key_id: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(concat!(
                    "UPDATE api_keys SET ",
                    $revoked,
                    " = $3 WHERE gym_id = $1 AND key_id = $2 AND ",
                    $revoked,
                    " IS NULL"
                ))
                .bind(gym.as_str())
                .bind(key_id)
                .bind(Self::db_time(crate::common::now_us())?)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() > 0 {
                    tracing::info!(gym = %gym, key_id, "api key revoked");
                    return Ok(true);
                }
                let exists = sqlx::query("SELECT 1 FROM api_keys WHERE gym_id = $1 AND key_id = $2")
                    .bind(gym.as_str())
                    .bind(key_id)
                    .fetch_optional(&self.pool)
                    .await?;
                match exists {
                    Some(_) => Ok(false),
                    None => Err(StoreError::NotFound(format!("api key {key_id} of gym {gym}"))),
                }
            }

            pub(crate) async fn authenticate_hash(
                &self,
                hash: &str,
            ) -> Result<Option<GymId>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT gym_id FROM api_keys WHERE secret_sha256 = $1 AND ",
                    $revoked,
                    " IS NULL"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    None => Ok(None),
                    Some(row) => {
                        let id: String = row.try_get("gym_id")?;
                        GymId::parse(id)
                            .map(Some)
                            .map_err(|e| StoreError::corrupt("api_keys", e.to_string()))
                    }
                }
            }

            pub(crate) async fn enroll_athlete(
                &self,
                gym: &GymId,
                a: &Athlete,
            ) -> Result<Athlete, StoreError> {
                let new_id = format!("a-{}", crate::common::random_hex(8)?);
                self.enroll_athlete_as(gym, a, &new_id).await
            }

            /// [`Self::enroll_athlete`] with the id a new athlete gets chosen by the caller
            /// (an athlete already enrolled under `(gym, external_ref)` keeps theirs).
            pub(crate) async fn enroll_athlete_as(
                &self,
                gym: &GymId,
                a: &Athlete,
                new_id: &str,
            ) -> Result<Athlete, StoreError> {
                crate::registry::validate_athlete(gym, a)?;
                self.require_gym(gym).await?;
                let now = Self::db_time(crate::common::now_us())?;
                let row = sqlx::query(concat!(
                    "INSERT INTO athletes (athlete_id, gym_id, external_ref, display_name, height_m, mass_kg, \
                     capacity_deadlift_kg, capacity_squat_kg, capacity_swing_kg, birth_year, sex, \
                     training_age_years, sport, ",
                    $created,
                    ", ",
                    $updated,
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
                     ON CONFLICT (gym_id, external_ref) DO UPDATE SET \
                     display_name = excluded.display_name, height_m = excluded.height_m, \
                     mass_kg = excluded.mass_kg, capacity_deadlift_kg = excluded.capacity_deadlift_kg, \
                     capacity_squat_kg = excluded.capacity_squat_kg, \
                     capacity_swing_kg = excluded.capacity_swing_kg, birth_year = excluded.birth_year, \
                     sex = excluded.sex, training_age_years = excluded.training_age_years, \
                     sport = excluded.sport, ",
                    $updated,
                    " = excluded.",
                    $updated,
                    " RETURNING ",
                    crate::registry::athlete_columns!()
                ))
                .bind(new_id)
                .bind(gym.as_str())
                .bind(&a.external_ref)
                .bind(&a.display_name)
                .bind(a.height_m)
                .bind(a.mass_kg)
                .bind(a.capacity_deadlift_kg)
                .bind(a.capacity_squat_kg)
                .bind(a.capacity_swing_kg)
                .bind(a.birth_year)
                .bind(&a.sex)
                .bind(a.training_age_years)
                .bind(&a.sport)
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                let athlete = Self::athlete_from_row(&row)?;
                tracing::info!(gym = %gym, athlete = athlete.athlete_id, created = (athlete.athlete_id == new_id), "athlete enrolled");
                Ok(athlete)
            }

            fn athlete_from_row(row: &Row) -> Result<Athlete, StoreError> {
                Ok(Athlete {
                    athlete_id: row.try_get("athlete_id")?,
                    gym_id: row.try_get("gym_id")?,
                    external_ref: row.try_get("external_ref")?,
                    display_name: row.try_get("display_name")?,
                    height_m: row.try_get("height_m")?,
                    mass_kg: row.try_get("mass_kg")?,
                    capacity_deadlift_kg: row.try_get("capacity_deadlift_kg")?,
                    capacity_squat_kg: row.try_get("capacity_squat_kg")?,
                    capacity_swing_kg: row.try_get("capacity_swing_kg")?,
                    birth_year: row.try_get("birth_year")?,
                    sex: row.try_get("sex")?,
                    training_age_years: row.try_get("training_age_years")?,
                    sport: row.try_get("sport")?,
                })
            }

            pub(crate) async fn get_athlete(
                &self,
                id: &AthleteId,
            ) -> Result<Option<Athlete>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    crate::registry::athlete_columns!(),
                    " FROM athletes WHERE athlete_id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::athlete_from_row).transpose()
            }

            /// The gym's athletes within `access` (the scope is in the WHERE clause).
            pub(crate) async fn list_athletes(
                &self,
                access: &crate::access::Scope,
                gym: &GymId,
            ) -> Result<Vec<Athlete>, StoreError> {
                self.require_gym(gym).await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    crate::registry::athlete_columns!(),
                    " FROM athletes WHERE "
                ));
                crate::access::push_scope(&mut qb, access, "gym_id", "athlete_id");
                qb.push(" AND gym_id = ")
                    .push_bind(gym.as_str().to_owned())
                    .push(" ORDER BY external_ref, athlete_id");
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::athlete_from_row).collect()
            }

            pub(crate) async fn register_sensor(
                &self,
                gym: &GymId,
                sensor: &SensorId,
                athlete: &AthleteId,
                placement: Placement,
            ) -> Result<Sensor, StoreError> {
                let in_gym = sqlx::query("SELECT 1 FROM athletes WHERE athlete_id = $1 AND gym_id = $2")
                    .bind(athlete.as_str())
                    .bind(gym.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                if in_gym.is_none() {
                    return Err(StoreError::NotFound(format!("athlete {athlete} in gym {gym}")));
                }
                let row = sqlx::query(concat!(
                    "INSERT INTO sensors (sensor_id, gym_id, athlete_id, placement, ",
                    $created,
                    ", ",
                    $updated,
                    ") VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (sensor_id) DO UPDATE SET \
                     athlete_id = excluded.athlete_id, placement = excluded.placement, ",
                    $updated,
                    " = excluded.",
                    $updated,
                    " WHERE sensors.gym_id = excluded.gym_id \
                     RETURNING sensor_id, gym_id, athlete_id, placement"
                ))
                .bind(sensor.as_str())
                .bind(gym.as_str())
                .bind(athlete.as_str())
                .bind(placement.as_str())
                .bind(Self::db_time(crate::common::now_us())?)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some(row) => {
                        tracing::info!(gym = %gym, sensor = %sensor, athlete = %athlete, %placement, "sensor registered");
                        Self::sensor_from_row(&row)
                    }
                    None => Err(StoreError::PermissionDenied(format!(
                        "sensor {sensor} belongs to another gym"
                    ))),
                }
            }

            fn sensor_from_row(row: &Row) -> Result<Sensor, StoreError> {
                let p: String = row.try_get("placement")?;
                let placement = Placement::parse(&p).ok_or_else(|| {
                    StoreError::corrupt("sensors", format!("placement {p:?}"))
                })?;
                Ok(Sensor {
                    sensor_id: row.try_get("sensor_id")?,
                    gym_id: row.try_get("gym_id")?,
                    athlete_id: row.try_get("athlete_id")?,
                    placement: placement.to_proto(),
                })
            }

            /// The gym's sensors within `access` (the scope is in the WHERE clause).
            pub(crate) async fn list_sensors(
                &self,
                access: &crate::access::Scope,
                gym: &GymId,
            ) -> Result<Vec<Sensor>, StoreError> {
                self.require_gym(gym).await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT sensor_id, gym_id, athlete_id, placement FROM sensors WHERE ",
                );
                crate::access::push_scope(&mut qb, access, "gym_id", "athlete_id");
                qb.push(" AND gym_id = ")
                    .push_bind(gym.as_str().to_owned())
                    .push(" ORDER BY sensor_id");
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::sensor_from_row).collect()
            }

            pub(crate) async fn sensor_binding(
                &self,
                sensor: &SensorId,
            ) -> Result<Option<SensorBinding>, StoreError> {
                let row = sqlx::query(
                    "SELECT s.gym_id, s.athlete_id, s.placement, a.height_m, a.mass_kg, \
                     a.capacity_deadlift_kg, a.capacity_squat_kg, a.capacity_swing_kg \
                     FROM sensors s JOIN athletes a ON a.athlete_id = s.athlete_id \
                     WHERE s.sensor_id = $1",
                )
                .bind(sensor.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let corrupt = |e: liftguard_model::IdError| StoreError::corrupt("sensors", e.to_string());
                let p: String = row.try_get("placement")?;
                Ok(Some(SensorBinding {
                    gym_id: GymId::parse(row.try_get::<String, _>("gym_id")?).map_err(corrupt)?,
                    athlete_id: AthleteId::parse(row.try_get::<String, _>("athlete_id")?)
                        .map_err(corrupt)?,
                    placement: Placement::parse(&p).ok_or_else(|| {
                        StoreError::corrupt("sensors", format!("placement {p:?}"))
                    })?,
                    profile: AthleteProfile {
                        height_m: row.try_get("height_m")?,
                        mass_kg: row.try_get("mass_kg")?,
                        capacity_deadlift_kg: row.try_get("capacity_deadlift_kg")?,
                        capacity_squat_kg: row.try_get("capacity_squat_kg")?,
                        capacity_swing_kg: row.try_get("capacity_swing_kg")?,
                    },
                }))
            }
        }
    };
}

macro_rules! athlete_columns {
    () => {
        "athlete_id, gym_id, external_ref, display_name, height_m, mass_kg, capacity_deadlift_kg, \
         capacity_squat_kg, capacity_swing_kg, birth_year, sex, training_age_years, sport"
    };
}

pub(crate) use athlete_columns;
pub(crate) use registry_impl;

use liftguard_model::GymId;
use liftguard_proto::v1::Athlete;

use crate::StoreError;
use crate::common::{check_f32, check_text};

/// Validates an enrollment; `a.gym_id` may be empty or must equal `gym`, `a.athlete_id`
/// is ignored (ids are generated by the store).
pub(crate) fn validate_athlete(gym: &GymId, a: &Athlete) -> Result<(), StoreError> {
    if !a.gym_id.is_empty() && a.gym_id != gym.as_str() {
        return Err(StoreError::invalid(
            "athlete.gym_id",
            format!("{:?} differs from the gym {gym}", a.gym_id),
        ));
    }
    if a.external_ref.is_empty() {
        return Err(StoreError::invalid(
            "athlete.external_ref",
            "must not be empty",
        ));
    }
    check_text("athlete.external_ref", &a.external_ref)?;
    check_text("athlete.display_name", &a.display_name)?;
    check_text("athlete.sex", &a.sex)?;
    check_text("athlete.sport", &a.sport)?;
    for (field, v) in [
        ("athlete.height_m", a.height_m),
        ("athlete.mass_kg", a.mass_kg),
        ("athlete.capacity_deadlift_kg", a.capacity_deadlift_kg),
        ("athlete.capacity_squat_kg", a.capacity_squat_kg),
        ("athlete.capacity_swing_kg", a.capacity_swing_kg),
    ] {
        check_f32(field, v)?;
    }
    Ok(())
}
