//! A gym onboarding and backfilling through the command line only, against a running
//! `liftguard run`: `admin` creates the gym, enrolls the athlete and registers both
//! sensors; `simulate` writes two sensor logbooks; `replay` streams them with their
//! original timestamps; `report` summarises and exports what was stored.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use liftguard_e2e::{Role, eventually, liftguard_bin, metric_sum, run_cli as cli};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gym_onboards_and_backfills_logbooks_from_the_command_line() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("liftguard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let d = dir.display().to_string();
    let url = format!("sqlite://{d}/liftguard.db?mode=rwc");
    let node = Role::start(
        "run",
        &[
            "run",
            "--database",
            &url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--operator-token",
            "op-secret",
        ],
        &[],
    )?;
    let ep = node.grpc.clone().unwrap();

    let gym = json(&cli(&[
        "admin",
        "--endpoint",
        &ep,
        "--token",
        "op-secret",
        "create-gym",
        "--slug",
        "cli-gym",
        "--name",
        "CLI Gym",
    ])?);
    let key = gym["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("lg_"), "{gym}");
    let athlete = json(&cli(&[
        "admin",
        "--endpoint",
        &ep,
        "--token",
        &key,
        "enroll",
        "--gym",
        "cli-gym",
        "--external-ref",
        "member-17",
        "--height-m",
        "1.80",
        "--mass-kg",
        "82",
        "--capacity-deadlift-kg",
        "160",
    ])?);
    let athlete_id = athlete["athlete_id"].as_str().unwrap().to_owned();
    for (sensor, placement) in [("cli-t12", "thoracolumbar"), ("cli-s1", "sacrum")] {
        cli(&[
            "admin",
            "--endpoint",
            &ep,
            "--token",
            &key,
            "register-sensor",
            "--gym",
            "cli-gym",
            "--sensor",
            sensor,
            "--athlete",
            &athlete_id,
            "--placement",
            placement,
        ])?;
    }
    let sensors = json(&cli(&[
        "admin",
        "--endpoint",
        &ep,
        "--token",
        &key,
        "list-sensors",
        "--gym",
        "cli-gym",
    ])?);
    assert_eq!(sensors.as_array().unwrap().len(), 2);
    // Another gym's key cannot see this gym.
    let other = json(&cli(&[
        "admin",
        "--endpoint",
        &ep,
        "--token",
        "op-secret",
        "create-gym",
        "--slug",
        "other-gym",
        "--name",
        "Other",
    ])?);
    let denied = std::process::Command::new(liftguard_bin())
        .args([
            "admin",
            "--endpoint",
            &ep,
            "--token",
            other["api_key"].as_str().unwrap(),
            "list-athletes",
            "--gym",
            "cli-gym",
        ])
        .output()?;
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied")
            || String::from_utf8_lossy(&denied.stderr).contains("permission")
    );

    // Two logbooks, replayed together with their original timestamps.
    cli(&["simulate", "--out", &d, "--seed", "9", "--minutes", "3"])?;
    let t12 = format!("{d}/thoracolumbar.csv");
    let s1 = format!("{d}/sacrum.csv");
    let samples = [&t12, &s1]
        .iter()
        .map(|f| std::fs::read_to_string(f).map(|s| s.lines().count() as u64 - 1))
        .sum::<Result<u64, _>>()?;
    let out = cli(&[
        "replay",
        &t12,
        &s1,
        "--sensor",
        "cli-t12",
        "--sensor",
        "cli-s1",
        "--endpoint",
        &ep,
        "--api-key",
        &key,
    ])?;
    assert!(out.contains("0 rejected"), "{out}");

    eventually(
        Duration::from_secs(60),
        "the replay to be stored",
        || async {
            let m = node.metrics().await?;
            let processed = metric_sum(&m, "liftguard_processor_samples_total") as u64;
            let produced = metric_sum(&m, "liftguard_processor_records_total");
            let written = metric_sum(&m, "liftguard_sink_written_records_total");
            Ok(
                if processed == samples && written >= produced && produced > 0.0 {
                    Ok(())
                } else {
                    Err(format!(
                        "processed {processed}/{samples}, written {written}/{produced}"
                    ))
                },
            )
        },
    )
    .await?;
    node.terminate(Duration::from_secs(30))?;

    // The report over the store, exported.
    let export = format!("{d}/export");
    let report = cli(&[
        "report",
        "--database",
        &url,
        "--export",
        &export,
        "--format",
        "both",
    ])?;
    assert!(report.contains("cli-gym"), "{report}");
    let truth = std::fs::read_to_string(dir.join("truth_reps.csv"))?;
    let true_reps = truth
        .lines()
        .skip(1)
        .filter(|l| !l.contains(",carry,"))
        .count();
    let exported = std::fs::read_to_string(format!("{export}/reps.csv"))?;
    let header = exported.lines().next().unwrap_or_default().to_owned();
    let ex_col = header.split(',').position(|c| c == "exercise").unwrap();
    let reps = exported
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(ex_col) != Some("carry"))
        .count();
    assert!(true_reps >= 10, "{true_reps}");
    assert_eq!(reps, true_reps, "stored reps vs the logbook's truth");
    assert!(std::fs::metadata(format!("{export}/reps.parquet"))?.len() > 0);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
