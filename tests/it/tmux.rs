//! A private tmux server to run the real binary's dashboard in, as a person would.
//!
//! Needs tmux. Without it the tests using it print a note and pass, unless
//! CNN_TUI_REQUIRE_TMUX is set (CI sets it, and installs tmux), in which case they fail.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    /// Starts `command` in a detached `width`x`height` session on a private tmux server.
    pub fn start(name: &str, width: u16, height: u16, command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CNN_TUI_REQUIRE_TMUX").is_none(),
                "tmux is required (apt-get install tmux)"
            );
            eprintln!("note: tmux not installed; dashboard end-to-end test skipped");
            return None;
        }
        let t = Tmux {
            socket: format!("cnn-tui-test-{}-{name}", std::process::id()),
            session: name.to_string(),
        };
        let (w, h) = (width.to_string(), height.to_string());
        t.tmux(&["new-session", "-d", "-s", name, "-x", &w, "-y", &h, command]);
        Some(t)
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    pub fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", &self.session, keys]);
    }

    /// Waits until the screen contains `text`; panics with the screen after `secs`.
    pub fn wait_for(&self, text: &str, secs: u64) -> String {
        self.wait_for_all(&[text], secs)
    }

    /// Waits until one capture holds all of `texts`; panics with the screen after `secs`.
    ///
    /// A capture can catch a frame half written (tmux applies the update as it arrives,
    /// row by row): a status line can already say FINISHED while the log below it still
    /// shows the frame before. Whatever a test asserts from one capture it waits for here.
    pub fn wait_for_all(&self, texts: &[&str], secs: u64) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                start.elapsed().as_secs() < secs,
                "waited {secs}s for {texts:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn alternate_screen_on(&self) -> bool {
        self.tmux(&[
            "display-message",
            "-p",
            "-t",
            &self.session,
            "#{alternate_on}",
        ])
        .trim()
            == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Training survives a hang-up by design: end what the pane started, then the server.
        let shells = self.tmux(&["list-panes", "-a", "-F", "#{pane_pid}"]);
        for shell in shells.lines() {
            let _ = Command::new("pkill").args(["-KILL", "-P", shell]).output();
        }
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

pub fn shell_command(dir: &Path, args: &str) -> String {
    format!(
        "cd '{}' && '{}' {args}; echo EXIT=$?; sleep 300",
        dir.display(),
        env!("CARGO_BIN_EXE_cnn-tui")
    )
}
