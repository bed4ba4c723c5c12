fn main() {
    println!(
        "{}",
        serde_json::to_string_pretty(&playbook::model::schema()).unwrap()
    );
}
