//! End-to-end tests of connector-server (in process) on real PostgreSQL, LocalStack and the
//! Slack double, driven by the generated tonic client.
