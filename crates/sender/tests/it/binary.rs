//! `connector-send` as a user runs it: environment configuration, stdout, exit codes.

use std::process::Command;

use secrecy::ExposeSecret as _;

use crate::rig::Rig;

fn connector_send(rig: &Rig) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-send"));
    let c = rig.config.settings();
    cmd.env_clear()
        .env(
            "CONNECTOR__DATABASE__URL",
            c.database.url.as_ref().unwrap().expose_secret(),
        )
        .env(
            "CONNECTOR__AWS__ENDPOINT_URL",
            c.aws.endpoint_url.as_deref().unwrap(),
        )
        .env("CONNECTOR__AWS__ACCESS_KEY_ID", "test")
        .env("CONNECTOR__AWS__SECRET_ACCESS_KEY", "test")
        .env("CONNECTOR__SECRETS__PREFIX", &rig.prefix)
        .env("CONNECTOR__SLACK__API_BASE_URL", &c.slack.api_base_url);
    cmd
}

#[tokio::test]
async fn prints_the_channel_and_ts_and_uploads_files() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let dir = std::env::temp_dir().join(format!("connector-send-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();

    let out = tokio::task::spawn_blocking({
        let mut cmd = connector_send(&rig);
        cmd.args([&id, "nightly report"]).arg("--file").arg(&file);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let first = stdout.lines().next().unwrap();
    let posted = rig.double.state().posted();
    assert_eq!(first, format!("C0ALERTS01 {}", posted[0].ts));
    let files = rig.double.state().files();
    assert_eq!(files[0].filename, "report.csv");
    assert!(
        stdout.contains(&format!("file {}", files[0].id)),
        "{stdout}"
    );

    let out = tokio::task::spawn_blocking({
        let mut cmd = connector_send(&rig);
        cmd.args([
            &id,
            "a reply",
            "--thread-ts",
            &posted[0].ts,
            "--reply-broadcast",
        ]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let posted = rig.double.state().posted();
    assert_eq!(posted[1].thread_ts, Some(posted[0].ts.clone()));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn failures_exit_non_zero_with_a_clear_message() {
    let rig = Rig::new().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let out = tokio::task::spawn_blocking({
        let mut cmd = connector_send(&rig);
        cmd.args([&unknown, "x"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("connector {unknown} not found")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_connector-send"))
            .env_clear()
            .args(["0192f5e4-8f4c-7a8e-9c3d-5b2a1e0f9d7c", "x"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CONNECTOR__DATABASE__URL"), "{stderr}");

    let out = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_connector-send"))
            .arg("only-one-argument")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error: {out:?}");
    assert!(rig.double.state().posted().is_empty());
}

#[tokio::test]
async fn a_request_id_makes_a_rerun_post_nothing_new() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let run = |key: &str, text: &str| {
        let mut cmd = connector_send(&rig);
        cmd.args([id.as_str(), text, "--request-id", key]);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let first = run("nightly-2026-11-28", "nightly report").await.unwrap();
    assert!(first.status.success(), "{first:?}");
    let again = run("nightly-2026-11-28", "nightly report").await.unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        first.stdout, again.stdout,
        "the rerun prints the first result"
    );
    assert_eq!(rig.double.state().posted().len(), 1);

    let reused = run("nightly-2026-11-28", "another text").await.unwrap();
    assert_eq!(reused.status.code(), Some(2), "{reused:?}");
    assert!(
        String::from_utf8_lossy(&reused.stderr).contains("request_id"),
        "{reused:?}"
    );
    let bad = run("not valid", "x").await.unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--request-id"),
        "{bad:?}"
    );
    assert_eq!(rig.double.state().posted().len(), 1);
}

#[tokio::test]
async fn update_and_delete_change_what_a_send_printed() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let run = |args: Vec<String>| {
        let mut cmd = connector_send(&rig);
        cmd.args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = run(vec![id.clone(), "deploy started".into()])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (channel, ts) = printed.split_once(' ').unwrap();

    let out = run(vec![
        "update".into(),
        id.clone(),
        channel.into(),
        ts.into(),
        "deploy finished".into(),
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), printed);
    assert_eq!(rig.double.state().posted()[0].text, "deploy finished");

    let out = run(vec!["delete".into(), id.clone(), channel.into(), ts.into()])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(rig.double.state().posted()[0].deleted);
    // Deleted already: "not found" is exit code 3.
    let out = run(vec!["delete".into(), id.clone(), channel.into(), ts.into()])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // A bad ts is a usage error, named.
    let out = run(vec![
        "update".into(),
        id,
        channel.into(),
        "soon".into(),
        "x".into(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ts:"),
        "{out:?}"
    );
}

#[tokio::test]
async fn schedule_then_cancel_from_the_shell() {
    let rig = Rig::new().await;
    let id = rig.connector("acme", "prod", "alerts").await;
    let run = |args: Vec<String>| {
        let mut cmd = connector_send(&rig);
        cmd.args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let out = run(vec!["schedule".into(), id.clone(), at, "tomorrow".into()])
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (channel, scheduled) = printed.split_once(' ').unwrap();
    assert_eq!(channel, "C0ALERTS01");
    assert_eq!(rig.double.state().scheduled()[0].id, scheduled);

    let out = run(vec![
        "cancel".into(),
        id.clone(),
        channel.into(),
        scheduled.into(),
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(rig.double.state().scheduled()[0].cancelled);
    let out = run(vec!["schedule".into(), id, "tomorrow".into(), "x".into()])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
