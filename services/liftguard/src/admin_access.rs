//! `liftguard admin` subcommands of the Access service: access tokens, clinicians, consent
//! grants, the audit log. Prints JSON for scripts; a token's secret is printed once, at
//! issue time (the server keeps only its hash).

use liftguard_client::Token;
use liftguard_proto::v1 as pb;
use liftguard_proto::v1::access_client::AccessClient;
use serde_json::json;
use tonic::transport::Channel;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AccessCommand {
    /// Issue an access token: gym-admin and clinician tokens need the operator token;
    /// coach and athlete tokens a gym admin token or the gym's API key. Prints the secret once.
    IssueToken {
        /// gym-admin, coach, clinician or athlete
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        gym: String,
        #[arg(long, default_value = "")]
        athlete: String,
        #[arg(long, default_value = "")]
        clinician: String,
        #[arg(long, default_value = "")]
        label: String,
        /// Lifetime in seconds (0: the server's default).
        #[arg(long, default_value_t = 0)]
        ttl_s: u64,
    },
    /// Revoke an access token.
    RevokeToken {
        #[arg(long)]
        token_id: String,
    },
    /// List access tokens (never their secrets).
    ListTokens {
        #[arg(long, default_value = "")]
        gym: String,
        #[arg(long, default_value = "")]
        clinician: String,
        #[arg(long)]
        include_revoked: bool,
    },
    /// Create a clinician (operator token); idempotent on --id.
    CreateClinician {
        /// [a-z0-9-]{3,64}; generated when omitted.
        #[arg(long, default_value = "")]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// List clinicians.
    ListClinicians,
    /// Grant a clinician consent: for the whole gym (gym admin) or one athlete (the
    /// athlete's token).
    Grant {
        #[arg(long)]
        clinician: String,
        #[arg(long)]
        gym: String,
        /// Empty: the whole gym.
        #[arg(long, default_value = "")]
        athlete: String,
        /// The clinician may see athlete identities (otherwise pseudonyms).
        #[arg(long)]
        identity: bool,
    },
    /// Revoke a consent grant.
    RevokeGrant {
        #[arg(long)]
        grant_id: String,
    },
    /// List consent grants visible to the caller.
    ListGrants {
        #[arg(long, default_value = "")]
        gym: String,
        #[arg(long, default_value = "")]
        athlete: String,
        #[arg(long, default_value = "")]
        clinician: String,
        #[arg(long)]
        include_revoked: bool,
    },
    /// Read the audit log, newest first (operator; a gym admin for its gym).
    Audit {
        #[arg(long, default_value = "")]
        gym: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Who the token is and what it may read.
    Whoami,
}

fn role(s: &str) -> anyhow::Result<pb::Role> {
    Ok(match s.replace('_', "-").as_str() {
        "gym-admin" => pb::Role::GymAdmin,
        "coach" => pb::Role::Coach,
        "clinician" => pb::Role::Clinician,
        "athlete" => pb::Role::Athlete,
        other => anyhow::bail!("role {other:?}: use gym-admin, coach, clinician or athlete"),
    })
}

fn role_str(r: i32) -> &'static str {
    match pb::Role::try_from(r) {
        Ok(pb::Role::GymAdmin) => "gym-admin",
        Ok(pb::Role::Coach) => "coach",
        Ok(pb::Role::Clinician) => "clinician",
        Ok(pb::Role::Athlete) => "athlete",
        _ => "unspecified",
    }
}

fn token_json(t: &pb::AccessToken) -> serde_json::Value {
    json!({
        "token_id": t.token_id, "role": role_str(t.role), "gym_id": t.gym_id,
        "athlete_id": t.athlete_id, "clinician_id": t.clinician_id, "label": t.label,
        "issued_by": t.issued_by, "created_us": t.created_us, "expires_us": t.expires_us,
        "revoked_us": t.revoked_us,
    })
}

fn grant_json(g: &pb::ConsentGrant) -> serde_json::Value {
    json!({
        "grant_id": g.grant_id, "clinician_id": g.clinician_id, "gym_id": g.gym_id,
        "athlete_id": g.athlete_id, "include_identity": g.include_identity,
        "granted_by": g.granted_by, "granted_us": g.granted_us, "revoked_us": g.revoked_us,
        "revoked_by": g.revoked_by,
    })
}

/// Runs one access subcommand over `channel` with the bearer `token`.
pub async fn run(channel: Channel, t: &Token, cmd: AccessCommand) -> anyhow::Result<()> {
    let mut c = AccessClient::new(channel);
    let out = match cmd {
        AccessCommand::IssueToken {
            role: r,
            gym,
            athlete,
            clinician,
            label,
            ttl_s,
        } => {
            let r = c
                .issue_token(t.request(pb::IssueTokenRequest {
                    role: role(&r)? as i32,
                    gym_id: gym,
                    athlete_id: athlete,
                    clinician_id: clinician,
                    label,
                    ttl_s,
                }))
                .await?
                .into_inner();
            let mut v = token_json(&r.token.unwrap_or_default());
            v["secret"] = json!(r.secret);
            v
        }
        AccessCommand::RevokeToken { token_id } => {
            let r = c
                .revoke_token(t.request(pb::RevokeTokenRequest { token_id }))
                .await?
                .into_inner();
            json!({"revoked": r.revoked})
        }
        AccessCommand::ListTokens {
            gym,
            clinician,
            include_revoked,
        } => {
            let r = c
                .list_tokens(t.request(pb::ListTokensRequest {
                    gym_id: gym,
                    clinician_id: clinician,
                    include_revoked,
                }))
                .await?
                .into_inner();
            json!(r.tokens.iter().map(token_json).collect::<Vec<_>>())
        }
        AccessCommand::CreateClinician { id, name } => {
            let r = c
                .create_clinician(t.request(pb::CreateClinicianRequest {
                    clinician_id: id,
                    name,
                }))
                .await?
                .into_inner();
            let k = r.clinician.unwrap_or_default();
            json!({"clinician_id": k.clinician_id, "name": k.name, "created": r.created})
        }
        AccessCommand::ListClinicians => {
            let r = c
                .list_clinicians(t.request(pb::ListCliniciansRequest {}))
                .await?
                .into_inner();
            json!(
                r.clinicians
                    .iter()
                    .map(|k| json!({"clinician_id": k.clinician_id, "name": k.name}))
                    .collect::<Vec<_>>()
            )
        }
        AccessCommand::Grant {
            clinician,
            gym,
            athlete,
            identity,
        } => {
            let g = c
                .grant_consent(t.request(pb::GrantConsentRequest {
                    clinician_id: clinician,
                    gym_id: gym,
                    athlete_id: athlete,
                    include_identity: identity,
                }))
                .await?
                .into_inner();
            grant_json(&g)
        }
        AccessCommand::RevokeGrant { grant_id } => {
            let r = c
                .revoke_consent(t.request(pb::RevokeConsentRequest { grant_id }))
                .await?
                .into_inner();
            json!({"revoked": r.revoked})
        }
        AccessCommand::ListGrants {
            gym,
            athlete,
            clinician,
            include_revoked,
        } => {
            let r = c
                .list_grants(t.request(pb::ListGrantsRequest {
                    gym_id: gym,
                    athlete_id: athlete,
                    clinician_id: clinician,
                    include_revoked,
                }))
                .await?
                .into_inner();
            json!(r.grants.iter().map(grant_json).collect::<Vec<_>>())
        }
        AccessCommand::Audit { gym, limit } => {
            let r = c
                .query_audit_log(t.request(pb::QueryAuditLogRequest {
                    gym_id: gym,
                    range: None,
                    limit,
                    page_token: String::new(),
                }))
                .await?
                .into_inner();
            json!(r.entries.iter().map(|e| json!({
                "audit_id": e.audit_id, "time_us": e.time_us, "actor": e.actor, "role": e.role,
                "token_id": e.token_id, "gym_id": e.gym_id, "action": e.action,
                "params": e.params, "status": e.status, "result_count": e.result_count,
                "detail": e.detail,
            })).collect::<Vec<_>>())
        }
        AccessCommand::Whoami => {
            let r = c
                .who_am_i(t.request(pb::WhoAmIRequest {}))
                .await?
                .into_inner();
            json!({
                "role": r.role, "actor": r.actor, "token_id": r.token_id, "gym_id": r.gym_id,
                "athlete_id": r.athlete_id, "clinician_id": r.clinician_id,
                "expires_us": r.expires_us, "all_gyms": r.all_gyms, "gym_ids": r.gym_ids,
                "all_athletes": r.all_athletes, "athlete_ids": r.athlete_ids,
                "identity": r.identity,
            })
        }
    };
    println!("{out}");
    Ok(())
}
