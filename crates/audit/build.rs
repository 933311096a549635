// `sqlx::migrate!` embeds the migration files at compile time; without this, adding a file
// under migrations/ would not rebuild the crate and the new migration would be missing.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
