//! Catching panics of user closures so that the element goes to the dead letters and the run goes
//! on. The default hook would print every caught panic; pipeline threads mark themselves so that
//! our hook records the message instead of printing it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// The first other process of a split run whose connection failed, and the network thread's
/// message (see [`lost_process`]).
static LOST: Mutex<Option<(usize, String)>> = Mutex::new(None);

/// The other process of a split run whose connection broke (it died, or its machine is gone),
/// with timely's message, if one did. timely's network threads (`timely:recv-N`, `timely:send-N`
/// for process `N`) panic when a connection fails, so that the failure cascades; the hook
/// records which process it was instead of printing the panic.
#[cfg(feature = "timely")]
pub(crate) fn lost_process() -> Option<(usize, String)> {
    LOST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Forgets a lost process (a new split run starts).
#[cfg(feature = "timely")]
pub(crate) fn clear_lost_process() {
    *LOST.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Marks the current thread as a pipeline thread: its panics are recorded, not printed.
pub(crate) fn quiet_thread() {
    install_hook();
    QUIET.with(|q| q.set(true));
}

/// Installs the hook (once): it records the panics of pipeline threads and of timely's network
/// threads instead of printing them.
pub(crate) fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let peer = thread
                .name()
                .and_then(|n| {
                    n.strip_prefix("timely:recv-")
                        .or(n.strip_prefix("timely:send-"))
                })
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(process) = peer {
                let mut lost = LOST.lock().unwrap_or_else(|e| e.into_inner());
                if lost.is_none() {
                    *lost = Some((process, payload_text(info.payload())));
                }
            } else if QUIET.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let message = payload_text(info.payload());
                LAST.with(|last| {
                    *last.borrow_mut() = Some(format!("panicked{location}: {message}"))
                });
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &dyn Any) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// The text of the panic just caught on this thread.
pub(crate) fn describe(payload: Box<dyn Any + Send>) -> String {
    LAST.with(|last| last.borrow_mut().take())
        .unwrap_or_else(|| format!("panicked: {}", payload_text(&*payload)))
}

/// Runs `f` with this thread's panics recorded instead of printed, and catches them.
#[cfg(feature = "timely")]
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f)).map_err(describe);
    QUIET.with(|q| q.set(was));
    result
}

/// Runs a user function, turning a panic into its message.
#[inline(always)]
pub fn guard<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(describe)
}
