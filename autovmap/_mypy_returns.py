"""The mypy plugin's hooks on return types: where mypy's choice among the stub's overloads is
less precise than the overloads themselves (`autovmap.mypy_plugin` registers them).

Like the plugin, this module imports only mypy, never jax.
"""

from __future__ import annotations

from mypy.checker import TypeChecker
from mypy.checkexpr import has_any_type
from mypy.nodes import ARG_POS, FuncDef, OverloadedFuncDef, TempNode
from mypy.plugin import FunctionContext, MethodContext
from mypy.typeops import bind_self
from mypy.types import CallableType, FunctionLike, Instance, Overloaded, Type, get_proper_type

AUTO_VMAP_CALL = "autovmap.AutoVmap.__call__"


def callee_of(api: TypeChecker, fullname: str, instance: Instance | None) -> FunctionLike | None:
    """The stub's overloads of `autovmap.auto_vmap`, `autovmap.vectorize`, or, bound to
    `instance`, `autovmap.AutoVmap.__call__`."""
    if instance is not None:
        method = instance.type.get_method("__call__")
        typ = method.type if method is not None else None
        return bind_self(typ, instance) if isinstance(typ, FunctionLike) else None
    module, _, name = fullname.rpartition(".")
    symbol = api.modules[module].names.get(name) if module in api.modules else None
    node = symbol.node if symbol is not None else None
    typ = node.type if isinstance(node, (FuncDef, OverloadedFuncDef)) else None
    return typ if isinstance(typ, FunctionLike) else None


def apply_rows(ctx: FunctionContext | MethodContext, fullname: str) -> Type:
    """Hook on what `auto_vmap(fn)`, `AutoVmap(...)(fn)` and `vectorize(fn)` return, where mypy's
    choice among the stub's rows is less precise than the rows themselves:

    - an overloaded function matches a row by its first item that fits one, and then keeps
      every item as declared (or drops the others): each item goes through the rows instead;
    - where a return type is expected, a function returning `Any` (or a lambda) matches rows
      that return different types, which mypy resolves to `Any`; without that context, the
      first row wins.
    """
    default = ctx.default_return_type
    if not (isinstance(ctx.api, TypeChecker) and ctx.arg_types and len(ctx.arg_types[0]) == 1):
        return default
    fn = get_proper_type(ctx.arg_types[0][0])
    if isinstance(fn, Overloaded):
        items = fn.items
    elif (
        isinstance(fn, CallableType)
        and has_any_type(fn)
        and ctx.api.expr_checker.type_context[-1] is not None
    ):
        # mypy calls this hook for each row that matches, and calls the result `Any` unless
        # they all return the same: the result without the context.
        items = [fn]
    else:
        return default
    instance = ctx.type if isinstance(ctx, MethodContext) else None
    callee = callee_of(ctx.api, fullname, instance if isinstance(instance, Instance) else None)
    if callee is None:
        return default
    checker = ctx.api.expr_checker
    results: list[CallableType] = []
    checker.type_context.append(None)
    try:
        with ctx.api.msg.filter_errors():  # reported once, by the call itself
            for item in items:
                result = get_proper_type(
                    checker.check_call(
                        callee, [TempNode(item, context=ctx.context)], [ARG_POS], ctx.context
                    )[0]
                )
                if not isinstance(result, CallableType):
                    return default
                results.append(result)
    finally:
        checker.type_context.pop()
    return Overloaded(results) if isinstance(fn, Overloaded) else results[0]


def apply_rows_of_call(ctx: MethodContext) -> Type:
    return apply_rows(ctx, AUTO_VMAP_CALL)
