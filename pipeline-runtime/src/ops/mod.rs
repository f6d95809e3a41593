//! The fused stages. Each is built in two steps: the typed constructor in `stages` makes
//! it with `next: ()` while the element types flow forward, and `then(next)` links it to the rest
//! of its segment once that exists.

mod channel;
mod combine_op;
mod drop;
mod filter;
mod flat_map;
mod inspect;
mod junction;
mod key_by;
mod map;
mod merge;
mod partition_op;
mod sink;
mod tee;
mod try_map;
mod window_op;

pub use channel::{channel, Batch, ChannelOut, Parcel, Receiver, Sender, Wake};
pub use combine_op::{CombineOp, MAX_WINDOWS_AHEAD};
pub use drop::Discard;
pub use filter::Filter;
pub use flat_map::FlatMap;
pub use inspect::Inspect;
pub use junction::{Junction, JunctionInput};
pub use key_by::KeyBy;
pub use map::Map;
pub use merge::Merge;
pub use partition_op::{Arms, Partition};
pub use sink::SinkOp;
pub use tee::{Consumers, Tee};
pub use try_map::TryMap;
pub use window_op::WindowOp;

/// Flush and finish for a stage that only counts its input and forwards.
macro_rules! forward_flush {
    () => {
        fn flush(
            &mut self,
            run: &$crate::context::RunContext,
            partial: bool,
        ) -> $crate::push::Flow {
            self.cell.publish(run);
            self.next.flush(run, partial)
        }

        fn finish(&mut self, run: &$crate::context::RunContext) -> $crate::Result<()> {
            self.cell.publish(run);
            self.next.finish(run)
        }

        fn signal(&mut self, signal: $crate::push::Signal, run: &$crate::context::RunContext) {
            self.next.signal(signal, run);
        }
    };
}
pub(crate) use forward_flush;

/// `then(next)` for a stage struct whose last field is `next`.
///
/// Stages carry their input type `I` (from the typed constructor): when a constructor's check
/// fails, the types after it become errors and rustc reports the mistake once, at the stage,
/// instead of again for the assembled segment.
macro_rules! linkable {
    ($name:ident { $($field:ident),* }) => {
        impl<F, I> $name<F, I, ()> {
            #[doc(hidden)]
            pub fn new(id: u32, f: F) -> Self {
                $name {
                    cell: $crate::push::StageCell::new(id),
                    f,
                    $($field: Default::default(),)*
                    next: (),
                    _input: std::marker::PhantomData,
                }
            }

            /// Links this stage to the rest of its segment.
            pub fn then<N>(self, next: N) -> $name<F, I, N> {
                $name { cell: self.cell, f: self.f, $($field: self.$field,)* next, _input: self._input }
            }
        }
    };
}
pub(crate) use linkable;
