fn main() {
    std::process::exit(minipaas::run());
}
