//! The markers behind the stage checks (see `stages`): how a check that fails stops rustc from
//! reporting the same mistake again at every later use of what the stage makes.

/// The marker of the impl of a check that applies.
pub struct Fits;
/// The marker of the impl of a check that never applies (see the module doc).
pub struct Misfit;
/// Implemented by no type: the bound of every [`Misfit`] impl.
pub trait Unreachable {}

/// Declares a check trait `$name<$params.., M>` on `$self` that holds when `$bounds` do, with the
/// associated types `$assoc` and `Pass<X>` (`X` itself once the check holds).
macro_rules! check {
    (
        $(#[$attr:meta])*
        trait $name:ident<$($p:ident),*> for $s:ident $(, super $($sup:path),+;)?
        where [$($bounds:tt)*]
        { $(type $assoc:ident $(: $abound:path)? = $val:ty;)* }
    ) => {
        $(#[$attr])*
        pub trait $name<$($p,)* M> $(: $($sup +)+)? {
            $(type $assoc $(: $abound)?;)*
            /// `X`, once the check holds; a type rustc cannot name when it fails.
            type Pass<X>;
            fn pass<X>(x: X) -> Self::Pass<X>;
        }
        impl<$($p,)* $s> $name<$($p,)* Fits> for $s where $($bounds)* {
            $(type $assoc = $val;)*
            type Pass<X> = X;
            #[inline(always)]
            fn pass<X>(x: X) -> X {
                x
            }
        }
        impl<$($p,)* $s> $name<$($p,)* Misfit> for $s where $s: Unreachable, $($bounds)* {
            $(type $assoc = $val;)*
            type Pass<X> = X;
            fn pass<X>(x: X) -> X {
                x
            }
        }
    };
}
pub(crate) use check;
