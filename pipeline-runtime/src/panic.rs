//! Catching panics of user code so that the element goes to the dead letters and the run goes on.
//!
//! A `catch_unwind` around every stage would cost an unwinding edge per stage per element, which
//! keeps the compiler from optimising the fused loop (measured: about 5% of a 10-stage chain).
//! Instead each stage records its number in a thread-local before it runs user code, the segment
//! driver records the element's position, and one `catch_unwind` per chunk of input catches the
//! panic; the driver then dead-letters that element, blaming the stage last entered, and goes on
//! with the rest of the chunk. The default hook would print every caught panic; pipeline threads
//! mark themselves so that our hook records the message instead.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use crate::push::Pos;

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
    static STAGE: Cell<u32> = const { Cell::new(0) };
    static POS: Cell<Pos> = const { Cell::new(Pos { source: 0, index: 0 }) };
}

/// Records that the current thread is about to run stage `stage`'s user code.
#[inline(always)]
pub(crate) fn enter(stage: u32) {
    STAGE.with(|s| s.set(stage));
}

/// Records the position of the element the current thread is working on.
#[inline(always)]
pub(crate) fn at(pos: Pos) {
    POS.with(|p| p.set(pos));
}

/// A panic caught in a segment: the stage that was running, the element, the message.
pub(crate) struct Caught {
    pub stage: u32,
    pub pos: Pos,
    pub message: String,
}

/// Runs a piece of a segment's loop; a panic inside comes back as the stage and element it hit.
#[inline(always)]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Caught {
        stage: STAGE.with(Cell::get),
        pos: POS.with(Cell::get),
        message: describe(payload),
    })
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
