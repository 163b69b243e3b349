"""A mypy plugin: reports, when type-checking, the rank specs `auto_vmap` rejects when decorating.

Enable it with `plugins = autovmap.mypy_plugin` in the mypy configuration. It reports:

- a rank keyword that names no parameter of the decorated function;
- more positional ranks than the function has parameters (positional ranks fill the
  parameters in signature order, whatever their kind, `self` and `cls` included);
- a parameter given a rank both positionally and by keyword;
- a literal rank, or pytree leaf of one, that is negative, a bool or a string: the stub's rank
  type cannot exclude these (`bool` is an `int`, and mypy takes a `str` for a sequence).

How: a signature hook on `auto_vmap(...)` (and `autovmap(...)`, `AutoVmap(...)`) checks the
literal ranks and records how many positional ranks there are, and which keywords, in hidden
attributes of the `AutoVmap` type it returns; a signature hook on `AutoVmap.__call__` compares
them with the parameters of the function being decorated. Ranks mypy cannot count
(`*ranks`, `**ranks`) are not checked. Signature hooks, unlike return-type hooks, run once per
call rather than once per overload tried, so their errors do not make overloads fail to match.

This module imports only mypy, never jax: mypy loads it in its own process.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import ErrorCode
from mypy.nodes import ARG_NAMED, ARG_POS, ARG_STAR, CallExpr, Context, DictExpr, Expression
from mypy.nodes import FuncDef, ListExpr, TupleExpr
from mypy.plugin import CheckerPluginInterface, FunctionSigContext, MethodSigContext, Plugin
from mypy.types import CallableType, FunctionLike, Instance, LiteralType, LiteralValue
from mypy.types import TupleType, Type, get_proper_type

RANK_SPEC = ErrorCode("autovmap-rank", "Check `auto_vmap` ranks against the function", "autovmap")

_AUTO_VMAP = "autovmap.AutoVmap"
_FACTORIES = frozenset({"autovmap.auto_vmap", "autovmap.autovmap", _AUTO_VMAP})
_OPTIONS = frozenset({"check", "chunk_size"})  # keywords of `auto_vmap` that are not ranks
# Hidden attributes of the `AutoVmap` type: user code cannot name an attribute with a dot.
_N_POSITIONAL = "autovmap.n_positional_ranks"
_KEYWORDS = "autovmap.keyword_ranks"


def _literal_value(api: CheckerPluginInterface, expr: Expression) -> LiteralValue | None:
    """The value of a literal expression (`-1`, `True`, a `Final` name), else None."""
    typ = get_proper_type(api.get_expression_type(expr))
    if isinstance(typ, Instance) and typ.last_known_value is not None:
        typ = typ.last_known_value
    return typ.value if isinstance(typ, LiteralType) else None


def _check_leaves(api: CheckerPluginInterface, rank: Expression) -> None:
    """Report the leaves of a rank, as written, whose literal value `auto_vmap` rejects."""
    if isinstance(rank, (TupleExpr, ListExpr)):
        for item in rank.items:
            _check_leaves(api, item)
    elif isinstance(rank, DictExpr):
        for _, item in rank.items:
            _check_leaves(api, item)
    else:
        leaf = _literal_value(api, rank)
        if isinstance(leaf, (bool, str)) or (isinstance(leaf, int) and leaf < 0):
            api.fail(
                f"A rank is an int >= 0, None, or a pytree of those; got {leaf!r}",
                rank,
                code=RANK_SPEC,
            )


def _record_ranks(ctx: FunctionSigContext) -> FunctionLike:
    """Hook on `auto_vmap(...)`: check literal ranks, and record what the decorator needs."""
    signature = ctx.default_signature
    returned = get_proper_type(signature.ret_type)
    call = ctx.context
    # Overload items that take the function itself (`auto_vmap(fn)`) have no ranks.
    if not (
        isinstance(call, CallExpr)
        and isinstance(returned, Instance)
        and returned.type.fullname == _AUTO_VMAP
    ):
        return signature
    n_positional: int | None = 0  # None: a `*ranks` hides how many there are
    keywords: list[str] = []
    for arg, kind, name in zip(call.args, call.arg_kinds, call.arg_names):
        if name in _OPTIONS:
            continue
        if kind == ARG_STAR:
            n_positional = None
        elif kind == ARG_POS and n_positional is not None:
            n_positional += 1
        elif kind == ARG_NAMED and name is not None:
            keywords.append(name)
        _check_leaves(ctx.api, arg)

    str_type = ctx.api.named_generic_type("builtins.str", [])
    returned = returned.copy_with_extra_attr(
        _KEYWORDS,
        TupleType(
            [LiteralType(name, str_type) for name in keywords],
            ctx.api.named_generic_type("builtins.tuple", [str_type]),
        ),
    )
    if n_positional is not None:
        int_type = ctx.api.named_generic_type("builtins.int", [])
        returned = returned.copy_with_extra_attr(_N_POSITIONAL, LiteralType(n_positional, int_type))
    # mypy annotates `copy_modified` with its `Bogus[...]`, which pyright reads as unknown.
    return signature.copy_modified(ret_type=returned)  # pyright: ignore[reportUnknownMemberType]


def _check_decorated(ctx: MethodSigContext) -> FunctionLike:
    """Hook on `AutoVmap.__call__`: compare the recorded ranks with the function's parameters.

    mypy calls it once per overload item of `__call__`; it drops the repeated errors.
    """
    decorator = ctx.type
    if not (isinstance(decorator, Instance) and decorator.extra_attrs and ctx.args[0]):
        return ctx.default_signature
    fn_node = ctx.args[0][0]  # for `@auto_vmap(...)`, a node at the line of the decorator
    fn = get_proper_type(ctx.api.get_expression_type(fn_node))
    # A `ParamSpec` callable has no parameters to check against.
    if isinstance(fn, CallableType) and fn.param_spec() is None:
        _check_parameters(ctx.api, decorator.extra_attrs.attrs, fn, fn_node)
    return ctx.default_signature


def _check_parameters(
    api: CheckerPluginInterface, recorded: dict[str, Type], fn: CallableType, context: Context
) -> None:
    definition = fn.definition
    # A callable type has no names for positional-only parameters; its definition does.
    names: list[str | None] = list(fn.arg_names)
    if isinstance(definition, FuncDef) and len(definition.arguments) == len(names):
        names = [argument.variable.name for argument in definition.arguments]
    label = f"`auto_vmap({definition.name if definition else fn.name or 'function'})`"
    valid = ", ".join(f"`{name}`" for name in names if name is not None) or "(none)"

    def fail(message: str) -> None:
        api.fail(f"{label}: {message}", context, code=RANK_SPEC)

    n_positional = get_proper_type(recorded.get(_N_POSITIONAL))
    if isinstance(n_positional, LiteralType) and isinstance(n_positional.value, int):
        if n_positional.value > len(names):
            fail(
                f"{n_positional.value} positional ranks given, but the function has only "
                f"{len(names)} parameters ({valid}); positional ranks fill the parameters in order"
            )
        positional_names = names[: n_positional.value]
    else:
        positional_names = []
    keywords = get_proper_type(recorded.get(_KEYWORDS))
    if not isinstance(keywords, TupleType) or None in names:
        return  # some parameter names are unknown
    for item in map(get_proper_type, keywords.items):
        if not isinstance(item, LiteralType):
            continue
        if item.value not in names:
            fail(f"a rank is given for `{item.value}`, which is not a parameter ({valid})")
        elif item.value in positional_names:
            fail(f"parameter `{item.value}` is given a rank twice, positionally and by keyword")


class AutoVmapPlugin(Plugin):
    """Checks `auto_vmap` rank specs against the functions they decorate."""

    def get_function_signature_hook(
        self, fullname: str
    ) -> Callable[[FunctionSigContext], FunctionLike] | None:
        """Hook `auto_vmap(...)`, `autovmap(...)` and `AutoVmap(...)`."""
        return _record_ranks if fullname in _FACTORIES else None

    def get_method_signature_hook(
        self, fullname: str
    ) -> Callable[[MethodSigContext], FunctionLike] | None:
        """Hook `AutoVmap.__call__`, which decorates."""
        return _check_decorated if fullname == f"{_AUTO_VMAP}.__call__" else None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return AutoVmapPlugin
