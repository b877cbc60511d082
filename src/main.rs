//! The `admission-apiserver` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    admission_apiserver::main()
}
