//! A headless Chromium driven through the DevTools protocol over a pipe
//! (`--remote-debugging-pipe`: Chromium reads commands on fd 3 and writes
//! answers and events on fd 4, each message JSON ended by a NUL byte), so
//! that a test sees what a browser does with a page: console messages,
//! exceptions, log entries (CSP violations, failed loads), and the DOM's
//! layout through `Runtime.evaluate`.
//!
//! Every wait is bounded ([`TIMEOUT`]); the browser is killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The longest any one answer or event may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the browser is: `CRASHKIT_CHROMIUM`, else Debian's `chromium`.
pub fn chromium() -> String {
    std::env::var("CRASHKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// A running browser and one page's session.
pub struct Browser {
    child: Child,
    to: std::fs::File,
    from: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Every event seen so far, in order.
    pub events: Vec<Value>,
    _profile: PathBuf,
}

use std::path::PathBuf;

/// A pipe, close-on-exec (other tests' children must not inherit it):
/// (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2(2) to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: pipe(2) succeeded, so both are open descriptors owned by
    // nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Start headless Chromium (as root it needs `--no-sandbox`; the
    /// background-networking flags keep it from calling out on a closed
    /// network) with a new profile under `scratch`, and open a blank page.
    pub fn start(scratch: &std::path::Path) -> Browser {
        use std::os::fd::AsRawFd;
        // One profile per browser: tests in one process run at once.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        // Relaxed: only a unique number is needed, no ordering with other
        // memory.
        let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = scratch.join(format!("chromium-profile-{}-{nth}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        // Chromium reads fd 3 and writes fd 4.
        let (commands_read, commands_write) = pipe();
        let (answers_read, answers_write) = pipe();
        let (cr, aw) = (commands_read.as_raw_fd(), answers_write.as_raw_fd());
        let mut command = Command::new(chromium());
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                "--window-size=1100,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec, only async-signal-safe calls
        // (fcntl, dup2) on descriptors the parent keeps open until spawn
        // returns. Copied first to 10 and up, so that neither is 3 or 4
        // when dup2 moves them there; the copies dup2 makes have no
        // close-on-exec flag, so Chromium gets fds 3 and 4.
        unsafe {
            command.pre_exec(move || {
                let high_cr = libc::fcntl(cr, libc::F_DUPFD, 10);
                let high_aw = libc::fcntl(aw, libc::F_DUPFD, 10);
                if high_cr < 0
                    || high_aw < 0
                    || libc::dup2(high_cr, 3) < 0
                    || libc::dup2(high_aw, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install Debian's chromium (cargo xtask test does)",
                chromium()
            )
        });
        drop(commands_read);
        drop(answers_write);
        let to = std::fs::File::from(commands_write);
        let reader = std::fs::File::from(answers_read);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop();
                        if let Ok(value) = serde_json::from_slice::<Value>(&message)
                            && tx.send(value).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to,
            from: rx,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in [
            "Runtime.enable",
            "Log.enable",
            "Page.enable",
            "Network.enable",
        ] {
            browser.call(domain, json!({}));
        }
        browser
    }

    /// Send `method` (to the page's session once there is one) and wait
    /// for its answer; an error answer fails the test.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let value = self.receive(deadline, method);
            if value["id"].as_u64() == Some(id) {
                assert!(value.get("error").is_none(), "{method}: {}", value["error"]);
                return value["result"].clone();
            }
            self.events.push(value);
        }
    }

    /// The next message, before `deadline`.
    fn receive(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from.recv_timeout(left) {
            Ok(value) => value,
            Err(RecvTimeoutError::Timeout) => panic!("chromium: no {waiting_for} in {TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("chromium exited while waiting for {waiting_for}")
            }
        }
    }

    /// Load `url` and wait for its load event; returns the events the load
    /// brought (the page's own, from navigation on).
    pub fn load(&mut self, url: &str) -> Vec<Value> {
        let before = self.events.len();
        self.call("Page.navigate", json!({"url": url}));
        let deadline = Instant::now() + TIMEOUT;
        if !self.events[before..]
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            loop {
                let value = self.receive(deadline, "Page.loadEventFired");
                let loaded = value["method"] == "Page.loadEventFired";
                self.events.push(value);
                if loaded {
                    break;
                }
            }
        }
        // Whatever the page logs while it settles.
        self.evaluate("new Promise(r => setTimeout(() => r(1), 100))");
        self.events[before..].to_vec()
    }

    /// The value of `expression` in the page (promises awaited); an
    /// exception fails the test.
    pub fn evaluate(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events of `events` that are problems a user would see in the
/// console: exceptions, console errors and warnings, log entries of level
/// error or warning (CSP violations, failed loads), failed requests.
pub fn problems(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            let method = e["method"].as_str().unwrap_or("");
            match method {
                "Runtime.exceptionThrown" | "Network.loadingFailed" => true,
                "Runtime.consoleAPICalled" => {
                    matches!(
                        e["params"]["type"].as_str(),
                        Some("error" | "warning" | "assert")
                    )
                }
                "Log.entryAdded" => matches!(
                    e["params"]["entry"]["level"].as_str(),
                    Some("error" | "warning")
                ),
                _ => false,
            }
        })
        .map(Value::to_string)
        .collect()
}

/// The URLs the page requested (`Network.requestWillBeSent`).
pub fn requests(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_owned))
        .collect()
}
