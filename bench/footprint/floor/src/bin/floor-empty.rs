//! The floor without a runtime: a Rust program that only waits to be killed.

fn main() {
    loop {
        std::thread::park();
    }
}
