//! Catching panics of user closures so that the element goes to the dead letters and the run goes
//! on. The default hook would print every caught panic; pipeline threads mark themselves so that
//! our hook records the message instead of printing it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Marks the current thread as a pipeline thread: its panics are recorded, not printed.
pub(crate) fn quiet_thread() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
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
    QUIET.with(|q| q.set(true));
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

/// Runs a user function, turning a panic into its message.
#[inline(always)]
pub fn guard<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(describe)
}
