//! A diesel error in the port's terms, for both backends.

use connector_ports::RepositoryError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Whether `e` says the connection itself failed (closed, broken, or ended by the server:
/// PostgreSQL's SQLSTATE 57P01–57P03, which diesel-async reports without their code), as
/// opposed to the statement.
pub fn is_connection_error(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let m = info.message();
            [
                "terminating connection due to administrator command",
                "terminating connection due to crash of another server process",
                "the database system is shutting down",
                "the database system is starting up",
                "the database system is in recovery mode",
                "server closed the connection unexpectedly",
                "connection closed",
            ]
            .iter()
            .any(|known| m.contains(known))
        }
        _ => false,
    }
}

/// Which unique key a violation names: PostgreSQL gives the constraint, SQLite the columns
/// (`UNIQUE constraint failed: connectors.tenant_id, connectors.name`).
fn unique_violation(constraint: Option<&str>, message: &str) -> RepositoryError {
    let names = |constraint_name: &str, column: &str| {
        constraint == Some(constraint_name) || message.contains(column)
    };
    if names("connectors_tenant_name_key", "connectors.name") {
        RepositoryError::DuplicateName
    } else if names("connectors_tenant_request_id_key", "connectors.request_id") {
        RepositoryError::DuplicateRequestId
    } else {
        RepositoryError::Unknown(anyhow::anyhow!(
            "unexpected unique violation on {constraint:?}: {message}"
        ))
    }
}

/// Translates a diesel error into the port's terms: unique keys the ports name, lost
/// connections and transient conflicts (`Unavailable`: worth retrying), the rest `Unknown`.
pub fn map_err(e: DieselError) -> RepositoryError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            unique_violation(info.constraint_name(), info.message())
        }
        e if is_connection_error(&e) => {
            RepositoryError::Unavailable(format!("the database connection was lost: {e}"))
        }
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
            RepositoryError::Unavailable(format!("transient database conflict: {}", info.message()))
        }
        DieselError::DatabaseError(_, info)
            if info.message().contains("database is locked")
                || info.message().contains("database is busy") =>
        {
            RepositoryError::Unavailable(format!("the database is busy: {}", info.message()))
        }
        other => RepositoryError::Unknown(anyhow::Error::new(other)),
    }
}

/// A row that does not decode into the domain's terms.
pub fn corrupt(what: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::Unknown(anyhow::anyhow!("corrupt row: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn connection_class_errors_are_unavailable_and_statement_errors_are_not() {
        for e in [
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to crash of another server process",
            ),
            db(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            db(DatabaseErrorKind::ClosedConnection, "gone"),
        ] {
            assert!(is_connection_error(&e), "{e}");
            assert!(matches!(map_err(e), RepositoryError::Unavailable(_)));
        }
        let syntax = db(
            DatabaseErrorKind::Unknown,
            "syntax error at or near \"SELEC\"",
        );
        assert!(!is_connection_error(&syntax));
        assert!(matches!(map_err(syntax), RepositoryError::Unknown(_)));
        assert!(matches!(
            map_err(db(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize"
            )),
            RepositoryError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(db(DatabaseErrorKind::Unknown, "database is locked")),
            RepositoryError::Unavailable(_)
        ));
    }

    #[test]
    fn sqlite_unique_violations_name_their_key_by_column() {
        assert!(matches!(
            map_err(db(
                DatabaseErrorKind::UniqueViolation,
                "UNIQUE constraint failed: connectors.tenant_id, connectors.name"
            )),
            RepositoryError::DuplicateName
        ));
        assert!(matches!(
            map_err(db(
                DatabaseErrorKind::UniqueViolation,
                "UNIQUE constraint failed: connectors.tenant_id, connectors.request_id"
            )),
            RepositoryError::DuplicateRequestId
        ));
        assert!(matches!(
            map_err(db(
                DatabaseErrorKind::UniqueViolation,
                "UNIQUE constraint failed: api_keys.id"
            )),
            RepositoryError::Unknown(_)
        ));
    }
}
