//! The server with every dependency in a container of its own (PostgreSQL and a Secrets
//! Manager emulator, started by testcontainers), a network cut between it and PostgreSQL in
//! the middle of creates, and PostgreSQL restarted under mixed traffic.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use connector_grpc_api::pb::{
    DeleteConnectorRequest, GetConnectorRequest, ListConnectorsRequest, SendMessageRequest,
};
use test_support::TestDatabase;
use test_support::containers::{self, PgContainer, SecretsContainer};
use tonic::Code;

use crate::helpers::{TOKEN, create_request, double, secrets_client_of, settings, start, stop};

/// Answers counted as they come, so a test waits for what it needs to see.
#[derive(Default)]
struct Tally {
    served: AtomicUsize,
    refused: AtomicUsize,
}

impl Tally {
    fn note(&self, ok: bool) {
        let counter = if ok { &self.served } else { &self.refused };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Waits until at least `served` answers were OK and `refused` were not, within a
    /// generous deadline.
    async fn until(&self, what: &str, served: usize, refused: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.served() < served || self.refused() < refused {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 60 s for this: {what} ({} served, {} refused)",
                self.served(),
                self.refused()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Names of the secrets under `prefix` in the emulator at `endpoint`.
async fn secret_names(endpoint: &str, prefix: &str) -> HashSet<String> {
    let client = secrets_client_of(endpoint);
    let mut names = HashSet::new();
    let mut pages = client.list_secrets().into_paginator().send();
    while let Some(page) = pages.next().await {
        for s in page.unwrap().secret_list() {
            if let Some(n) = s.name().filter(|n| n.starts_with(prefix)) {
                names.insert(n.to_owned());
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_send_and_delete_with_every_dependency_in_a_container() {
    let (pg, store) = tokio::join!(PgContainer::start(), SecretsContainer::start());
    let (pg, store) = (pg.unwrap(), store.unwrap());
    let db = TestDatabase::create_on(pg.admin_url()).await.unwrap();
    let double = double().await;
    let prefix = "containers/";
    let running = start(settings(
        &db,
        &double.api_base_url(),
        prefix,
        &[("CONNECTOR__AWS__ENDPOINT_URL", store.endpoint())],
    ))
    .await;
    let mut client = running.client.clone();

    let c = client
        .create_connector(create_request("acme", "prod", TOKEN, "#alerts", ""))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap();
    let name = format!("{prefix}acme/{}", c.id);
    assert_eq!(
        secret_names(store.endpoint(), prefix).await,
        HashSet::from([name.clone()])
    );
    client
        .send_message(SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: c.id.clone(),
            text: "from containers".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(double.state().posted()[0].text, "from containers");
    client
        .delete_connector(DeleteConnectorRequest {
            tenant_id: "acme".into(),
            id: c.id.clone(),
        })
        .await
        .unwrap();
    assert!(secret_names(store.endpoint(), prefix).await.is_empty());
    let gone = client
        .get_connector(GetConnectorRequest {
            tenant_id: "acme".into(),
            id: c.id,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cut_to_postgres_during_creates_is_unavailable_and_loses_nothing() {
    let (pg, store) = tokio::join!(PgContainer::start(), SecretsContainer::start());
    let (pg, store) = (pg.unwrap(), store.unwrap());
    let db = TestDatabase::create_on(pg.admin_url()).await.unwrap();
    let double = double().await;
    let prefix = "cut/";
    let running = start(settings(
        &db,
        &double.api_base_url(),
        prefix,
        &[
            ("CONNECTOR__AWS__ENDPOINT_URL", store.endpoint()),
            ("CONNECTOR__DATABASE__QUERY_TIMEOUT_SECS", "2"),
            ("CONNECTOR__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
            ("CONNECTOR__RECONCILER__INTERVAL_SECS", "1"),
            ("CONNECTOR__RECONCILER__STALE_AFTER_SECS", "2"),
        ],
    ))
    .await;

    // Creates one after another on several clients until told to stop; the link is cut
    // while they run. Each step waits for what it needs to see, not for a time.
    let tally = Arc::new(Tally::default());
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (mut client, tally, done) = (running.client.clone(), tally.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            // Bounded, whatever happens: at most 150 creates a worker.
            for i in 0..150 {
                if *done.borrow() {
                    break;
                }
                let answer = client
                    .create_connector(create_request(
                        "acme",
                        &format!("c-{worker}-{i}"),
                        TOKEN,
                        "#alerts",
                        "",
                    ))
                    .await
                    .map(|r| r.into_inner().connector.unwrap().id);
                tally.note(answer.is_ok());
                answers.push(answer);
            }
            answers
        }));
    }
    tally
        .until("creates are answered before the cut", 4, 0)
        .await;
    containers::disconnect(pg.id()).await.unwrap();
    let before = tally.refused();
    tally
        .until(
            "the cut is felt: a create answered UNAVAILABLE",
            0,
            before + 1,
        )
        .await;
    containers::reconnect(pg.id()).await.unwrap();
    let served = tally.served();
    tally
        .until("creates are answered again after the cut", served + 1, 0)
        .await;
    done_tx.send(true).unwrap();

    let mut acked = HashSet::new();
    let mut refused = 0;
    for task in tasks {
        for answer in task.await.unwrap() {
            match answer {
                Ok(id) => {
                    acked.insert(id);
                }
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 0, "the cut was felt");
    assert!(!acked.is_empty(), "creates succeeded around the cut");

    // After the reconciler's pass: every acknowledged create is there with its secret, and
    // nothing else is.
    let mut client = running.client.clone();
    let started = std::time::Instant::now();
    loop {
        let listed: HashSet<String> = client
            .list_connectors(ListConnectorsRequest {
                tenant_id: "acme".into(),
                page_size: 1000,
                page_token: String::new(),
                ..Default::default()
            })
            .await
            .map(|r| {
                r.into_inner()
                    .connectors
                    .into_iter()
                    .map(|c| c.id)
                    .collect()
            })
            .unwrap_or_default();
        let secrets: HashSet<String> = secret_names(store.endpoint(), prefix)
            .await
            .into_iter()
            .map(|n| n.trim_start_matches("cut/acme/").to_owned())
            .collect();
        if acked.is_subset(&listed) && secrets == listed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "acked {acked:?}\nlisted {listed:?}\nsecrets {secrets:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_traffic_is_unavailable_never_internal_and_heals_itself() {
    let pg = PgContainer::start().await.unwrap();
    let db = TestDatabase::create_on(pg.admin_url()).await.unwrap();
    let double = double().await;
    let prefix = format!("restart-{}/", uuid::Uuid::new_v4().simple());
    let running = start(settings(
        &db,
        &double.api_base_url(),
        &prefix,
        &[
            ("CONNECTOR__DATABASE__QUERY_TIMEOUT_SECS", "2"),
            ("CONNECTOR__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
        ],
    ))
    .await;
    let mut client = running.client.clone();
    let id = client
        .create_connector(create_request("acme", "steady", TOKEN, "#alerts", ""))
        .await
        .unwrap()
        .into_inner()
        .connector
        .unwrap()
        .id;

    // Reads, sends and creates from three clients, one after another, until told to stop.
    let tally = Arc::new(Tally::default());
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for worker in 0..3 {
        let (mut client, id, done, tally) = (
            running.client.clone(),
            id.clone(),
            done.clone(),
            tally.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut answers: Vec<Result<(), tonic::Status>> = Vec::new();
            let mut i = 0;
            // Bounded, whatever happens: at most 3,000 calls a worker.
            while !*done.borrow() && i < 3_000 {
                i += 1;
                let answer = match i % 3 {
                    0 => client
                        .get_connector(GetConnectorRequest {
                            tenant_id: "acme".into(),
                            id: id.clone(),
                        })
                        .await
                        .map(drop),
                    1 => client
                        .send_message(SendMessageRequest {
                            tenant_id: "acme".into(),
                            connector_id: id.clone(),
                            text: format!("w{worker} #{i}"),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    _ => client
                        .create_connector(create_request(
                            "acme",
                            &format!("w{worker}-{i}"),
                            TOKEN,
                            "#alerts",
                            "",
                        ))
                        .await
                        .map(drop),
                };
                tally.note(answer.is_ok());
                answers.push(answer);
            }
            answers
        }));
    }
    tally
        .until("calls are answered before the restart", 6, 0)
        .await;
    // Down until calls give up on it (the connect timeout passes), then back.
    pg.stop().await.unwrap();
    let before = tally.refused();
    tally
        .until(
            "the restart is felt: a call answered UNAVAILABLE",
            0,
            before + 1,
        )
        .await;
    pg.start_again().await.unwrap();
    let served = tally.served();
    tally
        .until("calls are answered again after the restart", served + 1, 0)
        .await;
    done_tx.send(true).unwrap();

    let (mut served, mut refused) = (0, 0);
    for task in tasks {
        for answer in task.await.unwrap() {
            match answer {
                Ok(()) => served += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 0, "the restart was felt ({served} served)");

    // The same server, not restarted, serves every kind of call again.
    let started = std::time::Instant::now();
    loop {
        let get = client
            .get_connector(GetConnectorRequest {
                tenant_id: "acme".into(),
                id: id.clone(),
            })
            .await;
        if get.is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{get:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client
        .send_message(SendMessageRequest {
            tenant_id: "acme".into(),
            connector_id: id.clone(),
            text: "after the restart".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .create_connector(create_request("acme", "after", TOKEN, "#alerts", ""))
        .await
        .unwrap();
    stop(running).await;
}
