//! Rebuilds this crate when a migration is added or changed: `embed_migrations!` reads
//! `migrations/postgres/` at compile time, and cargo would not otherwise notice a new directory.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
