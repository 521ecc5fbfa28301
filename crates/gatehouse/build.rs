//! Puts the git commit into `gatehouse --version`. A build outside a git checkout, or without git installed,
//! says `unknown` instead of failing: a source archive must build as well as a clone.

use std::{path::Path, process::Command};

/// `git` with these arguments, its output trimmed; `None` when git is missing or fails (not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // Not GATEHOUSE_…: cargo also sets this when it runs the tests, where that prefix names configuration keys.
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
    // Run again when HEAD moves: a commit, a checkout, or refs packed by git gc. Only existing paths are named,
    // since cargo reruns a script on every build while a named path is missing.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]).filter(|path| Path::new(path).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
