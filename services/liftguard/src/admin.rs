//! `liftguard admin`: enrollment through the Registry RPCs, so a gym can start without
//! writing a client. Prints results as JSON lines for scripts.

use anyhow::Context as _;
use liftguard_client::Token;
use liftguard_model::Placement;
use liftguard_proto::v1 as pb;
use serde_json::json;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Create a gym (operator token); prints its first API key.
    CreateGym {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Issue a new API key for a gym.
    IssueKey {
        #[arg(long)]
        gym: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke an API key.
    RevokeKey {
        #[arg(long)]
        gym: String,
        #[arg(long)]
        key_id: String,
    },
    /// Enroll (or update) an athlete.
    Enroll {
        #[arg(long)]
        gym: String,
        /// The gym's own reference (member number).
        #[arg(long)]
        external_ref: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long)]
        height_m: f32,
        #[arg(long)]
        mass_kg: f32,
        #[arg(long, default_value_t = 0.0)]
        capacity_deadlift_kg: f32,
        #[arg(long, default_value_t = 0.0)]
        capacity_squat_kg: f32,
        #[arg(long, default_value_t = 0.0)]
        capacity_swing_kg: f32,
        /// Cohort fields for population analytics (0 / empty: unknown).
        #[arg(long, default_value_t = 0)]
        birth_year: i32,
        /// As recorded by the gym (e.g. f, m).
        #[arg(long, default_value = "")]
        sex: String,
        /// Years of structured training.
        #[arg(long, default_value_t = 0)]
        training_age_years: i32,
        #[arg(long, default_value = "")]
        sport: String,
    },
    /// Register a sensor to an athlete.
    RegisterSensor {
        #[arg(long)]
        gym: String,
        #[arg(long)]
        sensor: String,
        #[arg(long)]
        athlete: String,
        /// thoracolumbar (T12) or sacrum (S1)
        #[arg(long)]
        placement: String,
    },
    /// List a gym's athletes.
    ListAthletes {
        #[arg(long)]
        gym: String,
    },
    /// List a gym's sensors.
    ListSensors {
        #[arg(long)]
        gym: String,
    },
    /// Access control: tokens, clinicians, consent grants, audit log.
    #[command(flatten)]
    Access(crate::admin_access::AccessCommand),
}

pub async fn run(endpoint: &str, token: &str, cmd: AdminCommand) -> anyhow::Result<()> {
    let channel = liftguard_client::connect(endpoint).await?;
    let t = Token::new(token)?;
    if let AdminCommand::Access(cmd) = cmd {
        return crate::admin_access::run(channel, &t, cmd).await;
    }
    let mut reg = liftguard_client::registry_client(channel);
    let out = match cmd {
        AdminCommand::Access(_) => unreachable_access(),
        AdminCommand::CreateGym { slug, name } => {
            let r = reg
                .create_gym(t.request(pb::CreateGymRequest { slug, name }))
                .await?
                .into_inner();
            let g = r.gym.unwrap_or_default();
            json!({"gym_id": g.gym_id, "slug": g.slug, "name": g.name, "api_key_id": r.api_key_id, "api_key": r.api_key})
        }
        AdminCommand::IssueKey { gym, label } => {
            let r = reg
                .issue_api_key(t.request(pb::IssueApiKeyRequest { gym_id: gym, label }))
                .await?
                .into_inner();
            json!({"api_key_id": r.api_key_id, "api_key": r.api_key})
        }
        AdminCommand::RevokeKey { gym, key_id } => {
            let r = reg
                .revoke_api_key(t.request(pb::RevokeApiKeyRequest {
                    gym_id: gym,
                    api_key_id: key_id,
                }))
                .await?
                .into_inner();
            json!({"revoked": r.revoked})
        }
        AdminCommand::Enroll {
            gym,
            external_ref,
            name,
            height_m,
            mass_kg,
            capacity_deadlift_kg,
            capacity_squat_kg,
            capacity_swing_kg,
            birth_year,
            sex,
            training_age_years,
            sport,
        } => {
            let a = reg
                .enroll_athlete(t.request(pb::EnrollAthleteRequest {
                    gym_id: gym,
                    athlete: Some(pb::Athlete {
                        external_ref,
                        display_name: name,
                        height_m,
                        mass_kg,
                        capacity_deadlift_kg,
                        capacity_squat_kg,
                        capacity_swing_kg,
                        birth_year,
                        sex,
                        training_age_years,
                        sport,
                        ..Default::default()
                    }),
                }))
                .await?
                .into_inner();
            athlete_json(&a)
        }
        AdminCommand::RegisterSensor {
            gym,
            sensor,
            athlete,
            placement,
        } => {
            let p = Placement::parse(&placement)
                .with_context(|| format!("placement {placement:?}: use thoracolumbar or sacrum"))?;
            let s = reg
                .register_sensor(t.request(pb::RegisterSensorRequest {
                    gym_id: gym,
                    sensor_id: sensor,
                    athlete_id: athlete,
                    placement: p.to_proto(),
                }))
                .await?
                .into_inner();
            json!({"sensor_id": s.sensor_id, "gym_id": s.gym_id, "athlete_id": s.athlete_id, "placement": p.as_str()})
        }
        AdminCommand::ListAthletes { gym } => {
            let r = reg
                .list_athletes(t.request(pb::ListAthletesRequest { gym_id: gym }))
                .await?
                .into_inner();
            json!(r.athletes.iter().map(athlete_json).collect::<Vec<_>>())
        }
        AdminCommand::ListSensors { gym } => {
            let r = reg
                .list_sensors(t.request(pb::ListSensorsRequest { gym_id: gym }))
                .await?
                .into_inner();
            json!(r.sensors.iter().map(|s| json!({
                "sensor_id": s.sensor_id, "athlete_id": s.athlete_id,
                "placement": Placement::from_proto(s.placement).map_or("unspecified", Placement::as_str)
            })).collect::<Vec<_>>())
        }
    };
    println!("{out}");
    Ok(())
}

/// `AdminCommand::Access` is handled before the registry client is made.
fn unreachable_access() -> serde_json::Value {
    serde_json::Value::Null
}

fn athlete_json(a: &pb::Athlete) -> serde_json::Value {
    json!({
        "athlete_id": a.athlete_id, "gym_id": a.gym_id, "external_ref": a.external_ref,
        "display_name": a.display_name, "height_m": a.height_m, "mass_kg": a.mass_kg,
        "birth_year": a.birth_year, "sex": a.sex, "training_age_years": a.training_age_years,
        "sport": a.sport,
    })
}
