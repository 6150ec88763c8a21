// `sqlx::migrate!` embeds shared/store/migrations at compile time; without this, adding or
// renaming a migration file does not rebuild the crate and the binary ships a stale set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
