//! The stpt reference server (skeleton; its issue fills it).

fn main() {
    println!("stpt-server: not yet wired; see README.md");
}
