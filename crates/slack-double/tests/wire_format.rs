//! The double speaks Slack's wire format: checked over real HTTP with a plain client.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use slack_double::{Channel, Fault, SlackDouble};

const TOKEN: &str = "xoxb-double-wire-test";

async fn double() -> SlackDouble {
    let d = SlackDouble::start().await.unwrap();
    d.state().add_generated_workspace(
        "T0WIRE001",
        2500,
        vec![
            Channel::public("C0ALERTS01", "alerts"),
            Channel {
                is_archived: true,
                ..Channel::public("C0OLD00001", "old")
            },
        ],
    );
    d.state().add_token(TOKEN, "T0WIRE001");
    d
}

/// Sends a request and decodes its JSON answer.
trait SendJson {
    async fn send_json(self) -> Value;
}

impl SendJson for reqwest::RequestBuilder {
    async fn send_json(self) -> Value {
        self.send().await.unwrap().json().await.unwrap()
    }
}

fn url(d: &SlackDouble, method: &str) -> String {
    format!("{}{method}", d.api_base_url())
}

#[tokio::test]
async fn the_token_comes_from_the_header_or_a_parameter() {
    let d = double().await;
    let http = reqwest::Client::new();
    let by_header: Value = http
        .post(url(&d, "auth.test"))
        .bearer_auth(TOKEN)
        .send_json()
        .await;
    assert_eq!(by_header["ok"], true);
    assert_eq!(by_header["team_id"], "T0WIRE001");

    let by_form: Value = http
        .post(url(&d, "auth.test"))
        .form(&[("token", TOKEN)])
        .send_json()
        .await;
    assert_eq!(by_form["ok"], true);

    let by_query: Value = http
        .get(format!("{}?token={TOKEN}", url(&d, "auth.test")))
        .send_json()
        .await;
    assert_eq!(by_query["ok"], true);

    let none = http.post(url(&d, "auth.test")).send().await.unwrap();
    assert_eq!(none.status(), 200, "API errors are HTTP 200");
    let none: Value = none.json().await.unwrap();
    assert_eq!(none, json!({"ok": false, "error": "not_authed"}));

    let bad: Value = http
        .post(url(&d, "auth.test"))
        .bearer_auth("xoxb-nope")
        .send_json()
        .await;
    assert_eq!(bad["error"], "invalid_auth");
}

#[tokio::test]
async fn conversations_list_pages_with_cursors_up_to_1000() {
    let d = double().await;
    let http = reqwest::Client::new();
    let mut cursor = String::new();
    let mut total = 0;
    let mut pages = 0;
    loop {
        let page: Value = http
            .post(url(&d, "conversations.list"))
            .bearer_auth(TOKEN)
            .form(&[
                ("limit", "5000"),
                ("exclude_archived", "true"),
                ("cursor", cursor.as_str()),
            ])
            .send_json()
            .await;
        assert_eq!(page["ok"], true);
        let n = page["channels"].as_array().unwrap().len();
        assert!(n <= 1000, "limit is capped at 1000");
        total += n;
        pages += 1;
        cursor = page["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!((pages, total), (3, 2501), "archived channel excluded");

    let bad: Value = http
        .post(url(&d, "conversations.list"))
        .bearer_auth(TOKEN)
        .form(&[("cursor", "!!not-a-cursor")])
        .send_json()
        .await;
    assert_eq!(bad["error"], "invalid_cursor");
}

#[tokio::test]
async fn post_message_takes_json_and_is_recorded() {
    let d = double().await;
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(url(&d, "chat.postMessage"))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": "C0ALERTS01", "text": "hello", "thread_ts": "1.5", "reply_broadcast": true}))
        .send_json()
        .await;
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["channel"], "C0ALERTS01");
    let posted = d.state().posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].text, "hello");
    assert_eq!(posted[0].thread_ts.as_deref(), Some("1.5"));
    assert!(posted[0].reply_broadcast);
    assert_eq!(posted[0].ts, answer["ts"].as_str().unwrap());

    // The admin API lists the same.
    let listed: Value = http
        .get(format!("http://{}/_double/messages", d.addr()))
        .send_json()
        .await;
    assert_eq!(listed[0]["text"], "hello");

    let archived: Value = http
        .post(url(&d, "chat.postMessage"))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": "C0OLD00001", "text": "x"}))
        .send_json()
        .await;
    assert_eq!(archived["error"], "is_archived");
}

#[tokio::test]
async fn faults_are_injected_through_the_admin_api() {
    let d = double().await;
    let http = reqwest::Client::new();
    http.post(format!("http://{}/_double/faults", d.addr()))
        .json(&json!({"method": "auth.test", "times": 1,
                      "fault": {"kind": "rate_limited", "retry_after_secs": 7}}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let limited = http
        .post(url(&d, "auth.test"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let ok = http
        .post(url(&d, "auth.test"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the fault was used up");

    d.state().inject(
        "auth.test",
        Fault::SlackError {
            code: "fatal_error".into(),
        },
        1,
    );
    let v: Value = http
        .post(url(&d, "auth.test"))
        .bearer_auth(TOKEN)
        .send_json()
        .await;
    assert_eq!(v["error"], "fatal_error");

    http.post(format!("http://{}/_double/revoke", d.addr()))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    let v: Value = http
        .post(url(&d, "auth.test"))
        .bearer_auth(TOKEN)
        .send_json()
        .await;
    assert_eq!(v["error"], "token_revoked");
}
