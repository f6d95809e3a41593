//! What the function of each element-wise stage must be (`map`'s `FnMut(T) -> U`, `filter`'s
//! predicate, ...), as traits whose `#[diagnostic::on_unimplemented]` says, in tandem's words,
//! which stage received what. The fused stages in `ops` require them and the typed constructors
//! in `stages` check them, each at its stage.

use std::fmt::Display;

/// A function usable in `map`.
#[diagnostic::on_unimplemented(
    message = "`map` receives `{T}`, but this is not a function of `{T}`",
    label = "expected a closure or function taking `{T}`",
    note = "`map` calls its function with each element by value: `map(|x: {T}| ...)`"
)]
pub trait MapFn<T>: FnMut(T) -> <Self as MapFn<T>>::Out + Send {
    type Out;
}
impl<T, U, F: FnMut(T) -> U + Send> MapFn<T> for F {
    type Out = U;
}

/// A predicate usable in `filter`.
#[diagnostic::on_unimplemented(
    message = "`filter` receives `{T}`, but this is not a predicate on `&{T}`",
    label = "expected a closure `|x: &{T}| -> bool`",
    note = "`filter` keeps the elements for which its function returns `true`"
)]
pub trait FilterFn<T>: FnMut(&T) -> bool + Send {}
impl<T, F: FnMut(&T) -> bool + Send> FilterFn<T> for F {}

/// A function usable in `flat_map`.
#[diagnostic::on_unimplemented(
    message = "`flat_map` receives `{T}`, but this is not a function of `{T}` returning an iterable",
    label = "expected a closure `|x: {T}| -> impl IntoIterator`"
)]
pub trait FlatMapFn<T>: FnMut(T) -> <Self as FlatMapFn<T>>::Iter + Send {
    type Iter: IntoIterator;
}
impl<T, I: IntoIterator, F: FnMut(T) -> I + Send> FlatMapFn<T> for F {
    type Iter = I;
}

/// A fallible function usable in `try_map`.
#[diagnostic::on_unimplemented(
    message = "`try_map` receives `{T}`, but this is not a function of `{T}` returning a `Result`",
    label = "expected a closure `|x: {T}| -> Result<_, _>`",
    note = "`try_map` sends `Ok` values on and `Err`s to the dead letters"
)]
pub trait TryMapFn<T>: FnMut(T) -> Result<Self::Ok, Self::Err> + Send {
    type Ok;
    type Err;
}
impl<T, U, E, F: FnMut(T) -> Result<U, E> + Send> TryMapFn<T> for F {
    type Ok = U;
    type Err = E;
}

/// The error type of a `try_map`.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of this `try_map` does not implement `Display`",
    label = "its errors could not be written to the dead letters",
    note = "return an error that implements `std::fmt::Display` (a `String`, `std::io::Error`, a `thiserror` type, ...)"
)]
pub trait DeadLetterError: Display {}
impl<E: Display> DeadLetterError for E {}

/// A function usable in `inspect`.
#[diagnostic::on_unimplemented(
    message = "`inspect` receives `{T}`, but this is not a function of `&{T}`",
    label = "expected a closure `|x: &{T}|`"
)]
pub trait InspectFn<T>: FnMut(&T) + Send {}
impl<T, F: FnMut(&T) + Send> InspectFn<T> for F {}

/// A function usable in `key_by`.
#[diagnostic::on_unimplemented(
    message = "`key_by` receives `{T}`, but this is not a function of `&{T}`",
    label = "expected a closure `|x: &{T}| -> Key`"
)]
pub trait KeyFn<T>: FnMut(&T) -> <Self as KeyFn<T>>::Key + Send {
    type Key;
}
impl<T, K, F: FnMut(&T) -> K + Send> KeyFn<T> for F {
    type Key = K;
}

/// A function usable as `window`'s time function.
#[diagnostic::on_unimplemented(
    message = "`window` receives `{T}`, but this is not a function of `&{T}` returning its event time",
    label = "expected a closure `|x: &{T}| x.time`",
    note = "the time is milliseconds (`i64`/`u64`), a `Duration` since your epoch or a `SystemTime`"
)]
pub trait TimeFn<T>: Fn(&T) -> <Self as TimeFn<T>>::Time + Send {
    type Time: crate::window::EventTime;
}
impl<T, U: crate::window::EventTime, F: Fn(&T) -> U + Send> TimeFn<T> for F {
    type Time = U;
}

/// Any function of `&T` (what `window`'s time function returns is checked on its own).
pub trait AnyTimeFn<T>: Fn(&T) -> <Self as AnyTimeFn<T>>::Time + Send {
    type Time;
}
impl<T, U, F: Fn(&T) -> U + Send> AnyTimeFn<T> for F {
    type Time = U;
}
