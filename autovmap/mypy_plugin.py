"""A mypy plugin: reports, when type-checking, what `auto_vmap` rejects when decorating.

Enable it with `plugins = autovmap.mypy_plugin` in the mypy configuration. It reports:

- a rank keyword that names no parameter of the decorated function;
- more positional ranks than the function has parameters (positional ranks fill the
  parameters in signature order, whatever their kind, `self` and `cls` included);
- a parameter given a rank both positionally and by keyword;
- a rank, or pytree leaf of one, that is negative or a bool, whether written as a literal or
  held in a variable of that type: the stub's rank type cannot exclude these (`bool` is an
  `int`);
- a dim string (a `str` rank, `"n k"`) known to the checker that gives no fixed rank (a
  variadic `*b` or `...`) or is written in gufunc syntax (`"(n,k)"`, which belongs in
  `signature=`);
- an option of the wrong type or value (`check` not a bool, `chunk_size` not an int >= 1,
  `axis_name` not a str, `spmd_axis_name` not a name, tuple or `PartitionSpec`, `signature` not
  a str, or a literal one that is not a gufunc signature), literal or through a `Final` name or
  class attribute: the stub's form for `auto_vmap(**ranks)` takes many of these for ranks;
- `chunk_size` together with an `axis_name`, which cannot run a chunk at a time;
- an option given to a function that has a parameter of the same name (option or rank?);
- an `async def` or generator function.

How: a signature hook on `auto_vmap(...)` (and `autovmap(...)`, `AutoVmap(...)`) checks the
ranks and options and records how many positional ranks there are, and which keywords, in
hidden attributes of the `AutoVmap` type it returns; a signature hook on `AutoVmap.__call__`
compares them with the parameters of the function being decorated. Ranks mypy cannot count
(`*ranks`, `**ranks` with a variable) are not checked, nor the parameters of a function typed
`Callable[..., T]` (such as `jax.grad(f)`). Signature hooks, unlike return-type hooks, run
once per overload item, before overloads are matched: their errors do not make an overload
fail to match, and mypy drops the repeats of an error on a line.

This module imports only mypy, never jax: mypy loads it in its own process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mypy.checker import TypeChecker
from mypy.errorcodes import ErrorCode
from mypy.nodes import (
    ARG_NAMED,
    ARG_POS,
    ARG_STAR,
    ARG_STAR2,
    CallExpr,
    Context,
    DictExpr,
    Expression,
    FuncDef,
    ListExpr,
    RefExpr,
    StrExpr,
    TupleExpr,
    TypeInfo,
)
from mypy.plugin import (
    CheckerPluginInterface,
    FunctionContext,
    FunctionSigContext,
    MethodContext,
    MethodSigContext,
    Plugin,
)
from mypy.plugins.functools import partial_new_callback
from mypy.types import (
    CallableType,
    FunctionLike,
    Instance,
    LiteralType,
    NoneType,
    TupleType,
    Type,
    get_proper_type,
)

from autovmap._mypy_returns import apply_rows, apply_rows_of_call, callee_of

RANK_SPEC = ErrorCode("autovmap-rank", "Check `auto_vmap` ranks against the function", "autovmap")
OPTION = ErrorCode("autovmap-option", "Check the options of `auto_vmap`", "autovmap")
REFUSED = ErrorCode(
    "autovmap-function", "Check that `auto_vmap` can batch the function", "autovmap"
)

_AUTO_VMAP = "autovmap.AutoVmap"
_FACTORIES = frozenset({"autovmap.auto_vmap", "autovmap.autovmap", _AUTO_VMAP})
_VECTORIZE = "autovmap.vectorize"
# The functions that take the function to batch (`auto_vmap(fn)`), and those whose `partial`
# makes a preset.
_DECORATORS = frozenset({"autovmap.auto_vmap", "autovmap.autovmap", _VECTORIZE})
_PRESETS = _DECORATORS
# The stub's TypedDict of options: its keys are the keywords of `auto_vmap` that are not ranks.
_OPTIONS = "autovmap._Options"
# Hidden attributes of the `AutoVmap` type: user code cannot name an attribute with a dot.
_N_POSITIONAL = "autovmap.n_positional_ranks"
_KEYWORDS = "autovmap.keyword_ranks"
_OPTIONS_GIVEN = "autovmap.options"
# Options that cannot be given together.
_EXCLUSIVE = ("chunk_size", "axis_name")
# What an `async def` or generator function returns.
_REFUSED_RETURNS = ("typing.Coroutine", "typing.Iterator", "typing.AsyncIterator")


# A gufunc signature, whitespace removed: entries of names or integers, `->`, entries.
_ENTRIES = r"\((\w+(,\w+)*)?\)(,\((\w+(,\w+)*)?\))*"
_GUFUNC = re.compile(f"{_ENTRIES}->{_ENTRIES}")


def _bad_dim_string(text: str) -> bool:
    """A dim string with no fixed rank, or in gufunc syntax (`auto_vmap` parses dim strings
    with jaxtyping, which this module does not import: these are the mistakes to expect)."""
    return text.lstrip().startswith("(") or any(
        token.lstrip("#").startswith("*") or token == "..." for token in text.split()
    )


def _bad_rank(api: CheckerPluginInterface, typ: Type) -> str | None:
    """What makes a rank of this type invalid (`"-1"`, "a `bool`"), if it certainly is."""
    typ = get_proper_type(typ)
    if isinstance(typ, Instance) and typ.last_known_value is not None:
        typ = typ.last_known_value
    if isinstance(typ, LiteralType):
        value = typ.value
        if isinstance(value, bool) or (isinstance(value, int) and value < 0):
            return repr(value)
        if isinstance(value, str) and _bad_dim_string(value):
            return (
                f"{value!r}, a dim string with no fixed rank (a variadic dim, or gufunc "
                "syntax, which goes in `signature=`)"
            )
        return None
    if isinstance(typ, TupleType):
        return next(filter(None, (_bad_rank(api, item) for item in typ.items)), None)
    if not isinstance(typ, Instance):
        return None  # Any, a union, a type variable: it may be a valid rank
    if typ.type.fullname == "builtins.bool":
        return f"a `{typ.type.name}`"
    if typ.type.fullname == "builtins.str":
        return None  # a dim string
    # mypy imports `mypy.maptype` after `mypy.types`: importing it first is circular.
    from mypy.maptype import map_instance_to_supertype

    # A pytree of ranks: the values of a mapping, the items of a sequence.
    for container, index in (("typing.Mapping", 1), ("typing.Sequence", 0)):
        if typ.type.has_base(container):
            info = api.named_generic_type(container, []).type
            args = map_instance_to_supertype(typ, info).args
            return _bad_rank(api, args[index]) if len(args) > index else None
    return None


def _check_leaves(api: CheckerPluginInterface, rank: Expression) -> None:
    """Report the leaves of a rank, as written, that `auto_vmap` rejects."""
    if isinstance(rank, (TupleExpr, ListExpr)):
        for item in rank.items:
            _check_leaves(api, item)
    elif isinstance(rank, DictExpr):
        for _, item in rank.items:
            _check_leaves(api, item)
    elif (problem := _bad_rank(api, api.get_expression_type(rank))) is not None:
        api.fail(
            f"A rank is an int >= 0, None, a dim string, or a pytree of those; got {problem}",
            rank,
            code=RANK_SPEC,
        )


def _check_option(api: CheckerPluginInterface, name: str, value: Expression) -> None:
    """Report an option value of a type or value that `auto_vmap` rejects. A type the checker
    cannot pin down (a union, `Any`) is not reported: it may hold a valid value."""
    typ = get_proper_type(api.get_expression_type(value))
    literal = typ.last_known_value if isinstance(typ, Instance) else typ
    if isinstance(typ, LiteralType):  # a `Final` name
        typ = typ.fallback
    if isinstance(typ, TupleType):
        typ = typ.partial_fallback  # `("(n)->()",)`: a tuple, whatever its items
    if isinstance(typ, NoneType):
        problem = name == "check"
    elif not isinstance(typ, Instance):
        return
    elif name == "check":
        problem = typ.type.fullname != "builtins.bool"
    elif name == "chunk_size":  # not a bool, though a bool is an int
        problem = typ.type.fullname != "builtins.int" or (
            isinstance(literal, LiteralType)
            and isinstance(literal.value, int)
            and literal.value < 1
        )
    elif name == "axis_name":
        problem = typ.type.fullname != "builtins.str"
    elif name == "spmd_axis_name":
        problem = not (
            typ.type.fullname == "builtins.str"
            or typ.type.has_base("builtins.tuple")
            or any(map(_is_partition_spec, typ.type.mro))
        )
    elif name == "signature":
        problem = typ.type.fullname != "builtins.str" or (
            isinstance(literal, LiteralType)
            and isinstance(literal.value, str)
            and not _GUFUNC.fullmatch("".join(literal.value.split()))
        )
    else:
        problem = False
    if problem:
        api.fail(f"`auto_vmap({name}=...)` takes {_OPTION_TYPES[name]}", value, code=OPTION)


def _is_partition_spec(info: TypeInfo) -> bool:
    """`jax.sharding.PartitionSpec`, whose class some versions of jax call `P`."""
    return info.fullname.startswith("jax.") and info.name in ("P", "PartitionSpec")


# What each option takes, in the words of `auto_vmap`'s own errors.
_OPTION_TYPES = {
    "check": "True or False",
    "chunk_size": "an int >= 1 or None",
    "axis_name": "a str (the name collectives use) or None",
    "spmd_axis_name": "a mesh axis name, a tuple of them, a `PartitionSpec` or None",
    "signature": "a gufunc signature such as '(n),(n,n)->()', or None",
}


def _is_set(api: CheckerPluginInterface, value: Expression) -> bool:
    """Whether an option value is certainly not `None` (the default, which sets nothing)."""
    typ = get_proper_type(api.get_expression_type(value))
    return isinstance(typ, (Instance, LiteralType, TupleType))


def _options(api: CheckerPluginInterface) -> frozenset[str]:
    """The option keywords, read from the stub's `_Options`."""
    typeddict = api.named_generic_type(_OPTIONS, []).type.typeddict_type
    return frozenset(typeddict.items if typeddict is not None else ())


def _keyword_arguments(call: CallExpr) -> Iterator[tuple[str | None, Expression]]:
    """The keyword arguments of a call, those of a literal `**{...}` included; a `**mapping`
    gives `(None, mapping)`."""
    for arg, kind, name in zip(call.args, call.arg_kinds, call.arg_names):
        if kind == ARG_NAMED:
            yield name, arg
        elif kind == ARG_STAR2 and isinstance(arg, DictExpr):
            for key, value in arg.items:
                yield (key.value if isinstance(key, StrExpr) else None), value
        elif kind == ARG_STAR2:
            yield None, arg


def _record_ranks(ctx: FunctionSigContext) -> FunctionLike:
    """Hook on `auto_vmap(...)`: check ranks and options, and record what the decorator needs.

    The items of `auto_vmap` that take the function itself (`auto_vmap(fn)`) return no
    `AutoVmap`: the call is checked in the items that do.
    """
    signature = ctx.default_signature
    returned = get_proper_type(signature.ret_type)
    call = ctx.context
    if not (
        isinstance(call, CallExpr)
        and isinstance(returned, Instance)
        and returned.type.fullname == _AUTO_VMAP
    ):
        return signature
    options = _options(ctx.api)
    n_positional: int | None = 0  # None: a `*ranks` hides how many there are
    for arg, kind in zip(call.args, call.arg_kinds):
        if kind == ARG_POS:
            items = [arg]
        elif kind == ARG_STAR and isinstance(arg, (TupleExpr, ListExpr)):
            items = arg.items
        elif kind == ARG_STAR:
            items, n_positional = [arg], None
        else:
            continue
        if n_positional is not None:
            n_positional += len(items)
        for item in items:
            _check_leaves(ctx.api, item)
    keywords: list[str] = []
    given: dict[str, Expression] = {}  # the options, by name
    for name, value in _keyword_arguments(call):
        if name in options:
            _check_option(ctx.api, name, value)
            given[name] = value
        elif name is not None:
            keywords.append(name)
            _check_leaves(ctx.api, value)
    if all(name in given and _is_set(ctx.api, given[name]) for name in _EXCLUSIVE):
        ctx.api.fail(
            "`auto_vmap(axis_name=..., chunk_size=...)`: a collective over the batch needs every "
            "example at once, and `chunk_size` evaluates a chunk at a time; drop one",
            given[_EXCLUSIVE[0]],
            code=OPTION,
        )
    if call.arg_kinds[:1] == [ARG_POS]:  # perhaps `auto_vmap(fn)`
        fn = _check_function(ctx.api, call.args[0])
        if fn is not None:
            _check_option_names(ctx.api, list(given), fn, call.args[0])

    returned = returned.copy_with_extra_attr(_KEYWORDS, _names(ctx.api, keywords))
    returned = returned.copy_with_extra_attr(_OPTIONS_GIVEN, _names(ctx.api, list(given)))
    if n_positional is not None:
        int_type = ctx.api.named_generic_type("builtins.int", [])
        returned = returned.copy_with_extra_attr(_N_POSITIONAL, LiteralType(n_positional, int_type))
    # mypy annotates `copy_modified` with its `Bogus[...]`, which pyright reads as unknown.
    return signature.copy_modified(ret_type=returned)  # pyright: ignore[reportUnknownMemberType]


def _names(api: CheckerPluginInterface, names: list[str]) -> TupleType:
    """Names, as a type that an `AutoVmap` type can carry: a tuple of literal strings."""
    str_type = api.named_generic_type("builtins.str", [])
    return TupleType(
        [LiteralType(name, str_type) for name in names],
        api.named_generic_type("builtins.tuple", [str_type]),
    )


def _recorded_names(recorded: dict[str, Type], key: str) -> list[str] | None:
    """The names `_names` recorded under `key`, if any."""
    names = get_proper_type(recorded.get(key))
    if not isinstance(names, TupleType):
        return None
    items = [get_proper_type(item) for item in names.items]
    return [
        item.value
        for item in items
        if isinstance(item, LiteralType) and isinstance(item.value, str)
    ]


def _parameter_names(fn: CallableType) -> list[str | None]:
    """The parameter names of a function; a callable type has no names for positional-only
    parameters, its definition does."""
    names: list[str | None] = list(fn.arg_names)
    definition = fn.definition
    if isinstance(definition, FuncDef) and len(definition.arguments) == len(names):
        names = [argument.variable.name for argument in definition.arguments]
    return names


def _check_option_names(
    api: CheckerPluginInterface, given: list[str], fn: CallableType, context: Context
) -> None:
    """Report an option given to a function with a parameter of the same name: `auto_vmap`
    cannot tell whether it is meant as the option or as the parameter's rank."""
    if fn.param_spec() is not None or fn.is_ellipsis_args:
        return
    names = _parameter_names(fn)
    for name in given:
        if name in names:
            api.fail(
                f"{_label(fn)}: `{name}` is both an option of `auto_vmap` and a parameter of the "
                f"function, which is ambiguous; rank `{name}` positionally, or rename it",
                context,
                code=OPTION,
            )


def _check_function(api: CheckerPluginInterface, fn_node: Expression) -> CallableType | None:
    """Report an `async def` or generator function; return the function's type, if callable."""
    fn = get_proper_type(api.get_expression_type(fn_node))
    if not isinstance(fn, CallableType):
        return None
    returned = get_proper_type(fn.ret_type)
    if isinstance(returned, Instance) and any(map(returned.type.has_base, _REFUSED_RETURNS)):
        api.fail(
            f"{_label(fn)}: `auto_vmap` cannot batch an `async def` or generator function",
            fn_node,
            code=REFUSED,
        )
    return fn


def _label(fn: CallableType) -> str:
    definition = fn.definition
    return f"`auto_vmap({definition.name if definition else fn.name or 'function'})`"


def _check_decorated(ctx: MethodSigContext) -> FunctionLike:
    """Hook on `AutoVmap.__call__`: compare the recorded ranks with the function's parameters.

    mypy calls it once per overload item of `__call__`, and drops the repeated errors.
    """
    decorator = ctx.type
    if not (isinstance(decorator, Instance) and ctx.args and ctx.args[0]):
        return ctx.default_signature
    fn_node = ctx.args[0][0]  # for `@auto_vmap(...)`, a node at the line of the decorator
    fn = _check_function(ctx.api, fn_node)
    # A `ParamSpec` callable, or one typed `Callable[..., T]`, has no parameters to check.
    if (
        fn is not None
        and decorator.extra_attrs
        and fn.param_spec() is None
        and not fn.is_ellipsis_args
    ):
        _check_parameters(ctx.api, decorator.extra_attrs.attrs, fn, fn_node)
    return ctx.default_signature


def _check_parameters(
    api: CheckerPluginInterface, recorded: dict[str, Type], fn: CallableType, context: Context
) -> None:
    names = _parameter_names(fn)
    label = _label(fn)
    valid = ", ".join(f"`{name}`" for name in names if name is not None)
    listed = f" ({valid})" if valid else ""

    def fail(message: str) -> None:
        api.fail(f"{label}: {message}", context, code=RANK_SPEC)

    n_positional = get_proper_type(recorded.get(_N_POSITIONAL))
    if isinstance(n_positional, LiteralType) and isinstance(n_positional.value, int):
        if n_positional.value > len(names):
            fail(
                f"{n_positional.value} positional ranks given, but the function has only "
                f"{len(names)} parameters{listed}; positional ranks fill the parameters in order"
            )
        positional_names = names[: n_positional.value]
    else:
        positional_names = []
    _check_option_names(api, _recorded_names(recorded, _OPTIONS_GIVEN) or [], fn, context)
    keywords = _recorded_names(recorded, _KEYWORDS)
    if keywords is None or None in names:
        return  # some parameter names are unknown
    for keyword in keywords:
        if keyword not in names:
            fail(f"a rank is given for `{keyword}`, which is not a parameter{listed}")
        elif keyword in positional_names:
            fail(f"parameter `{keyword}` is given a rank twice, positionally and by keyword")


def _partial(ctx: FunctionContext) -> Type:
    """Hook on `functools.partial(...)`: `functools.partial(auto_vmap, check=False)` keeps the
    stub's overloads, which mypy's own hook gives up on (it types the result `Any`). Options
    are checked as in `auto_vmap(...)`. Any other `partial` goes to mypy's own hook."""
    first = ctx.args[0][0] if ctx.args and ctx.args[0] else None
    keywords = [kind == ARG_NAMED for kinds in ctx.arg_kinds[1:] for kind in kinds]
    default = get_proper_type(ctx.default_return_type)
    if not (
        isinstance(ctx.api, TypeChecker)
        and isinstance(first, RefExpr)
        and first.fullname in _PRESETS
        and all(keywords)
        and isinstance(default, Instance)
    ):
        return partial_new_callback(ctx)
    callee = callee_of(ctx.api, first.fullname, None)
    if callee is None:
        return partial_new_callback(ctx)
    if first.fullname != _VECTORIZE:
        for names, args in zip(ctx.arg_names[1:], ctx.args[1:]):
            for name, arg in zip(names, args):
                if name is not None:
                    _check_option(ctx.api, name, arg)
    # mypy's hook on `partial.__call__` calls what this attribute holds.
    return default.copy_with_extra_attr("__mypy_partial", callee)


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

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        """Hook what `auto_vmap(fn)` and `vectorize(fn)` return, and `functools.partial`."""
        if fullname in _DECORATORS:
            return lambda ctx: apply_rows(ctx, fullname)
        return _partial if fullname == "functools.partial" else None

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        """Hook what `AutoVmap(...)(fn)` returns."""
        return apply_rows_of_call if fullname == f"{_AUTO_VMAP}.__call__" else None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return AutoVmapPlugin
