"""Which values can cross a process boundary, and how (SPEC §2).

Every parameter and return of a function called across a boundary is classified:

    scalar      integers, floats, enums: passed by value
    struct      a pointer-free struct by value
    deep        a struct whose pointer fields all say how to copy them, deep-copied
    in/out/inout  a pointer to `count` elements (bytes for void *), copied in and/or back
    deep_in     a pointer to `count` structs with pointers, each deep-copied in (never back)
    string      a NUL-terminated char string
    opaque      a handle passed through, never dereferenced by the receiver
    callback    a function pointer, called back across the boundary (scalar arguments and result)
    fd          an int that is a file descriptor (QPM_FD, parameter or result): the receiving
                process gets a descriptor of its own for the same open file; a negative value
                crosses as itself

and anything else is a diagnostic.  This module is the one place that decides how a value
crosses: `qtool check` reports what it refuses, and the stub generator builds exactly what it
accepts.  An array parameter (`T a[N]`) is the pointer C makes of it, with N elements unless
annotated.  Types are read from the analyzer's canonical encoding (see analyzer/walker.c): "*"
pointer ("*c" to const), "[N]" array, "S<usr>" struct, "B<name>" builtin, …
"""

from __future__ import annotations

import functools
import operator
import re

from .model import (Annotation, CallArgument, Diagnostic, FixIt, Function, IndirectCall, Location, Note, Param,
                    ProgramModel, StructType)
from .record import record

TYPE_CHECKING = False
if TYPE_CHECKING:         # annotations only: typing is not imported at run time
    from typing import Callable, Iterable

_INTEGERS = {"_Bool", "bool", "char", "signed char", "unsigned char", "short", "unsigned short",
             "int", "unsigned int", "long", "unsigned long", "long long", "unsigned long long",
             "__int128", "unsigned __int128", "wchar_t", "char16_t", "char32_t"}
_CHARS = {"char", "signed char", "unsigned char"}
# A length parameter beside a pointer (fix-its): a usual name, `…len`/`…size` (slen, keylen,
# bufsize), `…_count` and the like, or `n` + the pointer's name (nkey for key).
_LENGTH_NAME = re.compile(r"^(n|len|length|size|sz|count|cnt|num|nbytes|nelem|nelems|nmemb|nitems|cap|capacity|"
                          r"n_\w+|\w*len|\w*size|\w+_(len|length|size|sz|count|cnt|n|num|cap|bytes))$", re.I)
_TOKEN = re.compile(r"\s*(?:(?P<id>[A-Za-z_]\w*)|(?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)|"
                    r"(?P<op><<|>>|[-+*/%()&|^~?:<>]))")
POINTER_KINDS = ("in", "out", "inout")
CROSSING_KINDS = (*POINTER_KINDS, "string", "opaque", "callback", "fd")

# Process-local handles: values that name something living in one process (a stream, a lock, a
# thread), so that a copy means nothing in another.  Keyed by the type's name as written (the
# analyzer keeps typedef names) and by the C library's tags behind the common ones; the value says
# what the handle is.  Crossing as a pointer to one (or one by value) is QPM017 unless QPM_OPAQUE.
PROCESS_LOCAL = {
    "FILE": "a stdio stream", "struct _IO_FILE": "a stdio stream",
    "DIR": "a directory stream", "struct __dirstream": "a directory stream",
    "pthread_t": "a thread", "thrd_t": "a thread",
    "pthread_mutex_t": "a mutex", "mtx_t": "a mutex", "pthread_rwlock_t": "a lock",
    "pthread_spinlock_t": "a lock", "pthread_cond_t": "a condition variable", "cnd_t": "a condition variable",
    "pthread_barrier_t": "a barrier", "sem_t": "a semaphore", "pthread_once_t": "a once-flag",
    "once_flag": "a once-flag", "pthread_key_t": "a thread-specific key", "tss_t": "a thread-specific key",
    "pthread_attr_t": "thread attributes",
    "regex_t": "a compiled regular expression",
    "va_list": "a variable argument list", "__builtin_va_list": "a variable argument list",
    "__gnuc_va_list": "a variable argument list", "struct __va_list_tag": "a variable argument list",
    "jmp_buf": "a saved execution context", "sigjmp_buf": "a saved execution context",
    "iconv_t": "a conversion descriptor", "locale_t": "a locale", "timer_t": "a timer",
}
# Handles that QPM_OPAQUE cannot carry usefully (not pointers, or pointers into the stack).
_NOT_OPAQUE = {"va_list", "__builtin_va_list", "__gnuc_va_list", "struct __va_list_tag", "jmp_buf", "sigjmp_buf"}

# Calls of the C library that take a file descriptor, and at which argument positions (from 0).
FD_ARGUMENTS = {
    **{name: (0,) for name in (
        "read", "write", "pread", "pwrite", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
        "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg", "close",
        "fdopen", "fdopendir", "fstat", "fstat64", "fstatat", "fstatfs", "fchmod", "fchown", "fchdir",
        "ioctl", "fcntl", "accept", "accept4", "shutdown", "setsockopt", "getsockopt", "getpeername",
        "getsockname", "bind", "listen", "connect", "dup", "lseek", "lseek64", "fsync", "fdatasync",
        "ftruncate", "ftruncate64", "flock", "lockf", "posix_fadvise", "fallocate", "isatty",
        "openat", "epoll_wait", "epoll_pwait", "futimens", "fgetxattr", "fsetxattr", "inotify_add_watch",
        "timerfd_settime", "timerfd_gettime", "eventfd_read", "eventfd_write", "getdents64", "syncfs")},
    "dup2": (0, 1), "dup3": (0, 1), "sendfile": (0, 1), "sendfile64": (0, 1), "splice": (0, 2),
    "tee": (0, 1), "copy_file_range": (0, 2), "epoll_ctl": (0, 2), "mmap": (4,), "mmap64": (4,),
    "renameat": (0, 2), "linkat": (0, 2), "unlinkat": (0,), "mkdirat": (0,), "fchmodat": (0,),
    "fchownat": (0,), "readlinkat": (0,), "faccessat": (0,),
}

# Calls of the C library that return a new file descriptor.
FD_RETURNERS = frozenset((
    "socket", "accept", "accept4", "open", "open64", "openat", "openat64", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "eventfd", "timerfd_create", "signalfd", "memfd_create",
    "inotify_init", "inotify_init1", "fileno", "dirfd", "shm_open", "pidfd_open", "posix_openpt"))

# Calls of the C library that only write through a pointer argument (by position): a buffer a
# function passes only to these is filled, never read (fix-its: QPM_OUT rather than QPM_INOUT).
WRITE_ONLY_ARGUMENTS = {
    "memcpy": (0,), "memmove": (0,), "memset": (0,), "mempcpy": (0,), "strcpy": (0,), "strncpy": (0,),
    "stpcpy": (0,), "stpncpy": (0,), "snprintf": (0,), "vsnprintf": (0,), "sprintf": (0,),
    "vsprintf": (0,), "read": (1,), "pread": (1,), "pread64": (1,), "recv": (1,), "recvfrom": (1,),
    "fread": (0,), "fgets": (0,), "getcwd": (0,), "readlink": (1,), "readlinkat": (2,),
    "strftime": (0,), "gethostname": (0,), "strerror_r": (1,), "inet_ntop": (2,), "getrandom": (0,),
    "realpath": (1,),
}

# Calls that start a thread running the function passed at a position.
THREAD_STARTERS = {"pthread_create": 2, "thrd_create": 1}


@record
class Marshal:
    kind: str                  # scalar | struct | deep | in | out | inout | deep_in | string | opaque | callback | fd | void
    count: str | None = None   # the C expression, for in/out/inout
    element: str = ""          # element type encoding, for in/out/inout


# Type encodings.

def is_pointer(enc: str) -> bool:
    return enc.startswith("*")


def pointee(enc: str) -> str:
    return enc[2:] if enc.startswith("*c") else enc[1:]


def is_function(enc: str) -> bool:
    """A function type: "F<canonical spelling>" (the spelling, e.g. "int (int, char *)")."""
    return enc.startswith("F<")


def function_spelling(enc: str) -> str:
    return enc[2:-1]


def is_integer(enc: str) -> bool:
    return enc == "E" or (enc.startswith("B") and enc[1:] in _INTEGERS)


def is_descriptor(enc: str) -> bool:
    """What QPM_FD may annotate: an int (a typedef of int, const or not, included)."""
    return enc == "Bint"


def is_char_pointer(enc: str) -> bool:
    return is_pointer(enc) and pointee(enc)[1:] in _CHARS and pointee(enc).startswith("B")


def param_enc(p: Param) -> str:
    """The type a parameter really has: C makes an array parameter a pointer to its element
    (const when the element is; the canonical encoding of an array does not say, its spelling
    does)."""
    enc = p.type_enc
    if not enc.startswith("["):
        return enc
    return ("*c" if _array_element_const(p.type) else "*") + enc[enc.index("]") + 1:]


def array_length(p: Param) -> int | None:
    """N for an array parameter `T a[N]`, else None."""
    m = re.match(r"\[(\d+)\]", p.type_enc)
    return int(m.group(1)) if m else None


def _array_element_const(spelling: str) -> bool:
    base = spelling.split("[", 1)[0].strip()
    if "*" in base:             # an array of pointers: is the pointer itself const?
        return base.endswith("const")
    return bool(re.search(r"(^|\s)const(\s|$)", base))


def callback_signature(spelling: str) -> tuple[str, list[str], str | None]:
    """'int (int, double)' -> ('int', ['int', 'double'], None).  The third item says what stops
    the type from being called back across a boundary: only by-value scalars cross in callbacks."""
    depth, start = 0, None
    for i, ch in enumerate(spelling):
        if ch == "(":
            if depth == 0 and start is None:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
    ret = spelling[:start].strip() if start is not None else spelling
    inner = spelling[start + 1:spelling.rindex(")")] if start is not None else ""
    params, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            params.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip() and cur.strip() != "void":
        params.append(cur.strip())
    for t in [ret, *params]:
        if "*" in t or "[" in t or "(" in t or t.startswith(("struct ", "union ")) or t == "...":
            return ret, params, t
    return ret, params, None


def _strip_arrays(enc: str) -> str:
    while enc.startswith("["):
        enc = enc[enc.index("]") + 1:]
    while enc.startswith("A"):
        enc = enc[1:]
    return enc


_QUALIFIERS = {"const", "volatile", "restrict", "__restrict", "__restrict__", "_Atomic"}


@functools.lru_cache(maxsize=4096)
def process_local(spelling: str) -> tuple[str, bool] | None:
    """(handle type name, through a pointer) when a type as written is a process-local handle
    (PROCESS_LOCAL) or a pointer to one; else None."""
    text = re.sub(r"\[[^\]]*\]", "", spelling)
    stars = text.count("*")
    if stars > 1:
        return None
    words = [w for w in re.findall(r"[A-Za-z_]\w*", text) if w not in _QUALIFIERS]
    name = " ".join(words)
    if name in PROCESS_LOCAL:
        return name, stars == 1
    return None


def _handle_reason(name: str, opaque_ok: bool) -> str:
    """Why a handle (PROCESS_LOCAL) cannot cross, and what to do: QPM_OPAQUE where the other
    side would only hold it, else keep its users together."""
    head = f"is a handle local to this process ({PROCESS_LOCAL[name]}) that means nothing in another one"
    if opaque_ok:
        return f"{head}: mark it QPM_OPAQUE to pass it through unchanged, or pass what it refers to"
    return f"{head}: keep the functions that use it in one domain, or pass what it refers to"


@functools.lru_cache(maxsize=4096)
def read_only(spelling: str) -> bool:
    """Whether a variable of this type (as written) is itself const: `const int`, `const char
    *const`, an array of const elements; not `const char *`, a pointer the program may change."""
    text = re.sub(r"\[[^\]]*\]", "", spelling)
    if "*" in text:
        return "const" in re.findall(r"\w+", text[text.rindex("*") + 1:])
    return "const" in re.findall(r"\w+", text)


def pointer_free(enc: str, structs: dict[str, StructType], seen: frozenset = frozenset()) -> bool:
    enc = _strip_arrays(enc)
    if enc.startswith("*") or is_function(enc):
        return False
    if enc[:1] in ("S", "U"):
        s = structs.get(enc[1:])
        if s is None or s.usr in seen:
            return s is not None
        return all(pointer_free(f.type_enc, structs, seen | {s.usr}) for f in s.fields)
    return True


def struct_problem(enc: str, structs: dict[str, StructType], seen: frozenset = frozenset()) -> str | None:
    """Why a struct (by value) cannot be deep-copied (its first reason), or None when it can."""
    problems = struct_problems(enc, structs, seen)
    return problems[0] if problems else None


# struct_problems' answers for the struct map last asked about (a model's struct_map, which does
# not change): a program passes the same few structs to hundreds of functions, and a struct's
# fields hold the same few structs again.  Two tables: the answers asked with nothing seen yet, and
# those that hold whatever was seen on the way (no struct below met one seen above it: only a
# recursive struct does, so a struct is worked out once however many others hold it).  Each
# answer comes with the entries of the map it read, which a map that notes what is read of it
# (_ReadingMap, for Signatures) is told of whether the answer was worked out or known.
_problems: tuple[dict[str, StructType] | None, dict[str, tuple[tuple[str, ...], frozenset]],
                 dict[str, tuple[tuple[str, ...], frozenset]]] = (None, {}, {})
_recursions = 0         # answers "it is recursive" given so far


def struct_problems(enc: str, structs: dict[str, StructType], seen: frozenset = frozenset()) -> list[str]:
    """Every reason a struct (by value) cannot be deep-copied, one per offending field; [] when
    it can."""
    global _problems
    noting = structs if isinstance(structs, _ReadingMap) else None
    mapping = noting.mapping if noting is not None else structs
    if _problems[0] is not mapping:
        _problems = (mapping, {}, {})
    _, top, anywhere = _problems
    known = anywhere.get(enc)
    if known is None and not seen:
        known = top.get(enc)
    if known is None:
        before = _recursions
        reads: set[tuple] = set()
        answer = tuple(_struct_problems(enc, _ReadingMap(mapping, "struct_map", reads), seen))
        known = (answer, frozenset(reads))
        if _recursions == before:
            anywhere[enc] = known
        elif not seen:
            top[enc] = known
    if noting is not None:
        noting.reads.update(known[1])
    return list(known[0])


def _struct_problems(enc: str, structs: dict[str, StructType], seen: frozenset) -> list[str]:
    global _recursions
    enc = _strip_arrays(enc)
    if enc[:1] not in ("S", "U"):
        return []
    s = structs.get(enc[1:])
    if s is None:
        return ["its definition is not visible"]
    if s.usr in seen:
        _recursions += 1
        return ["it is recursive"]
    out = []
    for i, f in enumerate(s.fields):
        fenc = _strip_arrays(f.type_enc)
        handle = process_local(f.type)
        if handle is not None and not (handle[1] and f.annotation("opaque")):
            name, through_pointer = handle
            if through_pointer and handle[0] not in _NOT_OPAQUE:
                out.append(f"field '{f.name}' ({f.type}) is a handle local to this process "
                           f"({PROCESS_LOCAL[name]}): mark it QPM_OPAQUE")
            else:
                out.append(f"field '{f.name}' ({f.type}) is {PROCESS_LOCAL[name]} local to this process, "
                           "which a copy does not carry to another")
            continue
        if is_pointer(fenc) and fenc != f.type_enc:
            out.append(f"field '{f.name}' ({f.type}) is an array of pointers")
            continue
        if is_pointer(fenc):
            if f.annotation("opaque"):
                continue
            if f.annotation("string") and is_char_pointer(fenc):
                continue
            if f.annotation("count"):
                inner = struct_problem(pointee(fenc), structs, seen | {s.usr})
                if is_pointer(pointee(fenc)) or inner:
                    out.append(f"field '{f.name}' points to {'pointers' if not inner else inner}")
                continue
            if is_function(pointee(fenc)):
                out.append(f"field '{f.name}' ({f.type}) is a function pointer, which means nothing in "
                           "another process")
                continue
            length = next((g for g in (s.fields[i + 1:i + 2] + s.fields[max(i - 1, 0):i])
                           if is_integer(_strip_arrays(g.type_enc)) and _is_length_name(g.name, f.name)), None)
            hint = f" (perhaps QPM_COUNT({length.name}))" if length is not None else ""
            out.append(f"field '{f.name}' ({f.type}) is a pointer with no QPM_COUNT, QPM_STRING or QPM_OPAQUE{hint}")
            continue
        if is_function(fenc):
            out.append(f"field '{f.name}' is a function")
            continue
        if s.kind == "union" and not pointer_free(fenc, structs):
            out.append(f"union member '{f.name}' holds pointers")
            continue
        inner = struct_problems(fenc, structs, seen | {s.usr})
        if inner:
            out.append(f"field '{f.name}': {', '.join(inner)}")
    return out


# What a function's body does with a parameter (SPEC §2: descriptors, handles, fix-its).  A value
# is followed from a parameter through the calls that pass it on whole (CallArgument) to functions
# that run in the same process (same domain, or per-unit helpers), up to the C library.

def _same_process(model: ProgramModel, fn: Function, callee: Function,
                  domain_of: Callable[[str], str | None] | None) -> bool:
    if callee.per_unit:
        return True
    if callee.component is None or fn.component is None:
        return False
    if domain_of is None:
        return callee.component == fn.component
    return domain_of(callee.component) == domain_of(fn.component)


def _external(model: ProgramModel, a: CallArgument) -> bool:
    """A call of a function the program does not define (the C library's)."""
    if not a.callee:
        return False
    f = _seen_as(model.function_map, a.callee, "defined")
    return f is None or not f.defined


def param_flow(model: ProgramModel, fn: Function, index: int, sink: Callable[[CallArgument], bool],
               domain_of: Callable[[str], str | None] | None = None) -> list[CallArgument] | None:
    """The shortest chain of calls by which parameter `index` of fn reaches a call of the C library
    that `sink` accepts, passed on whole through functions of fn's process; None when it does not."""
    by_param = model.arguments_by_param
    fmap = model.function_map
    # Breadth first; each step holds the chain that led to it as (last call, chain before it).
    todo: list[tuple[str, int, tuple | None]] = [(fn.usr, index, None)]
    seen = {(fn.usr, index)}
    while todo:
        nxt = []
        for usr, i, chain in todo:
            for a in _seen_as(by_param, (usr, i), "flow") or ():
                if _external(model, a):
                    if sink(a):
                        found = _chain_list((a, chain))
                        for b in found:         # the calls of the chain, whole (where they are)
                            by_param.get((b.caller, b.param))
                        return found
                    continue
                callee = _seen_as(fmap, a.callee, "flow")
                if callee is None or not callee.defined or a.index >= len(callee.params):
                    continue
                if (callee.usr, a.index) in seen or not _same_process(model, fn, callee, domain_of):
                    continue
                seen.add((callee.usr, a.index))
                nxt.append((callee.usr, a.index, (a, chain)))
        todo = nxt
    return None


def _chain_list(chain: tuple | None) -> list:
    """The calls of a chain (last call, chain before it), first call first."""
    out = []
    while chain is not None:
        out.append(chain[0])
        chain = chain[1]
    out.reverse()
    return out


def _is_fd_use(a: CallArgument) -> bool:
    return a.index in FD_ARGUMENTS.get(a.callee_name, ())


# C library calls that take a block of memory over: its first argument is freed or resized.
MEMORY_TAKERS = ("free", "realloc", "reallocarray", "reallocf")


def _takes_memory(a: CallArgument) -> bool:
    return a.index == 0 and a.callee_name in MEMORY_TAKERS


def writes_only(model: ProgramModel, fn: Function, index: int,
                domain_of: Callable[[str], str | None] | None = None) -> bool:
    """Whether fn's body only writes through pointer parameter `index` (p[i] = …, *p = …, or
    passing it whole where only writes happen: memcpy's destination, snprintf, read, recv …, or a
    function of the same process that only writes through it, or takes it as QPM_OUT), and does
    write.  False when unsure, or when no body was seen."""
    fmap = model.function_map
    todo, seen = [(fn, index)], {(fn.usr, index)}
    while todo:
        f, i = todo.pop()
        if i >= len(f.param_uses):
            return False
        uses = f.param_uses[i]
        args = model.arguments_by_param.get((f.usr, i), ())
        if set(uses) - {"W"} or (not uses and not args):
            return False
        for a in args:
            if _external(model, a):
                if a.index not in WRITE_ONLY_ARGUMENTS.get(a.callee_name, ()):
                    return False
                continue
            callee = fmap.get(a.callee)
            if callee is None or a.index >= len(callee.params) or not _same_process(model, fn, callee, domain_of):
                return False
            if callee.params[a.index].annotation("out") or (callee.usr, a.index) in seen:
                continue
            seen.add((callee.usr, a.index))
            todo.append((callee, a.index))
    return True


# Count expressions.

def count_problems(expr: str, names: dict[str, str]) -> list[tuple[str, str]]:
    """Problems of a count expression over `names` (name -> type encoding): (code, message)."""
    out: list[tuple[str, str]] = []
    pos, depth_sizeof, paren = 0, None, 0
    expect_sizeof_paren = False
    text = expr.strip()
    if not text:
        return [("QPM020", "the count expression is empty")]
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            rest = text[pos:].strip()
            if not rest:
                break
            return [("QPM020", f"'{rest[0]}' is not allowed in a count expression "
                     "(use parameters, integer literals, sizeof and arithmetic)")]
        pos = m.end()
        tok_id, tok_op = m.group("id"), m.group("op")
        if tok_op == "(":
            paren += 1
            if expect_sizeof_paren:
                depth_sizeof = paren
                expect_sizeof_paren = False
        elif tok_op == ")":
            if depth_sizeof == paren:
                depth_sizeof = None
            paren -= 1
        elif tok_id == "sizeof":
            expect_sizeof_paren = True
        elif tok_id and depth_sizeof is None:
            if tok_id not in names:
                out.append(("QPM020", f"'{tok_id}' in count expression '{expr}' names no "
                            f"{'parameter' if names is not None else 'field'}"))
            elif not is_integer(names[tok_id]):
                out.append(("QPM021", f"'{tok_id}' in count expression '{expr}' is not an integer"))
    return out


_NOT_LENGTHS = {"next", "node", "name", "new", "nil", "none", "net", "nonce", "null", "nest"}


def _is_length_name(name: str, pointer: str) -> bool:
    if not name:
        return False
    if _LENGTH_NAME.match(name):
        return True
    # n + the pointer's name, or its start: nkey, nkeys or nk for key (not next for e).
    rest = name[1:].lstrip("_").lower() if name[:1] in "nN" and name.lower() not in _NOT_LENGTHS else ""
    pointer = pointer.lower()
    return bool(rest and pointer and (pointer.startswith(rest) or (len(pointer) > 1 and rest.startswith(pointer))))


def _named_after(length: str, pointer: str) -> bool:
    """Whether a length parameter's name starts with a pointer's: dstlen, dst_len, srcsize."""
    return bool(pointer) and len(length) > len(pointer) and length.lower().startswith(pointer.lower())


def _length_param(fn: Function, p: Param) -> Param | None:
    """The integer parameter that is pointer p's length, or None: one named after it anywhere in
    the list (dst -> dstlen), else the one beside it (the next, else the one before) named like a
    length (_LENGTH_NAME) and not after another pointer parameter (srclen is not dst's)."""
    lengths = [q for q in fn.params if is_integer(param_enc(q)) and _is_length_name(q.name or "", p.name or "")]
    own = [q for q in lengths if _named_after(q.name or "", p.name or "")]
    if own:
        return own[0]
    pointers = [r.name for r in fn.params if r is not p and r.name and is_pointer(param_enc(r))]
    for i in (p.index + 1, p.index - 1):
        q = fn.params[i] if 0 <= i < len(fn.params) else None
        if q in lengths and not any(_named_after(q.name or "", r) for r in pointers):
            return q
    return None


def _copy_annotation(model: ProgramModel, fn: Function, p: Param, const: bool,
                     domain_of: Callable[[str], str | None] | None) -> str:
    """QPM_IN for a const pointer; else QPM_OUT when the body only writes through it, QPM_INOUT
    when it reads it too (or no body says)."""
    if const:
        return "QPM_IN"
    return "QPM_OUT" if writes_only(model, fn, p.index, domain_of) else "QPM_INOUT"


def _fixit(p: Param, text: str) -> tuple[FixIt, ...]:
    if p.end is None or not p.end.file:
        return ()
    return (FixIt(p.end.file, p.end.line, p.end.column, " " + text),)


def _function_fixit(fn: Function, text: str) -> tuple[FixIt, ...]:
    """Inserts text at the start of the line naming the function on its annotation site."""
    site = fn.annotation_site
    loc = site.location if site is not None else fn.location
    return (FixIt(loc.file, loc.line, 1, text),)


def struct_label(s: StructType) -> str:
    name = s.name if re.match(r"^[A-Za-z_]\w*$", s.name or "") else "(anonymous)"
    return f"{s.kind} {name}"


def _root_struct(enc: str, structs: dict[str, StructType]) -> StructType | None:
    base = _strip_arrays(enc)
    return structs.get(base[1:]) if base[:1] in ("S", "U") else None


def _uses_note(model: ProgramModel, fn: Function, p: Param, domain_of) -> Note | None:
    """Where fn's process hands parameter p to the C library (first such place), as a note."""
    chain = param_flow(model, fn, p.index, lambda a: True, domain_of)
    if not chain:
        return None
    last = chain[-1]
    return Note(f"'{last.callee_name}' uses it here, in the process of '{fn.name}'", last.location)


def classify_param(model: ProgramModel, fn: Function, p: Param, severity: str,
                   context: str, domain_of: Callable[[str], str | None] | None = None,
                   roots: dict[str, list[Note]] | None = None) -> tuple[Marshal | None, list[Diagnostic]]:
    """How parameter p of fn crosses; unannotated problems get `severity`.  domain_of says which
    callees run in fn's process (default: those of its component).  With `roots`, a struct that
    cannot be copied is not reported here but collected, struct USR -> notes at its uses, to be
    reported once at its definition (report_struct_roots)."""
    enc = param_enc(p)
    structs = model.struct_map
    what = f"'{fn.name}' is called {context}: parameter '{p.name or p.index + 1}' ({p.type})"
    ann = p.annotation(*POINTER_KINDS, "string", "opaque", "callback", "fd")
    diags: list[Diagnostic] = []

    def problem(code: str, msg: str, fixits=(), notes=()) -> tuple[None, list[Diagnostic]]:
        diags.append(Diagnostic(severity, code, msg, p.location, tuple(fixits), tuple(notes)))
        return None, diags

    def bad_struct(elem: str, how: str) -> tuple[None, list[Diagnostic]] | None:
        """A struct that cannot be copied: one root cause, reported at its definition."""
        why = struct_problems(elem, structs)
        if not why:
            return None
        s = _root_struct(elem, structs)
        if s is not None and roots is not None:
            use = f"points to '{struct_label(s)}'" if how == "points to" else f"is a '{struct_label(s)}', copied by value"
            roots.setdefault(s.usr, []).append(Note(f"{what} {use}", p.location))
            return None, diags
        return problem("QPM014", f"{what} {how} a struct that cannot be copied: {why[0]}")

    def pointed(kind: str, count: str, elem: str, how: str) -> tuple[Marshal | None, list[Diagnostic]]:
        """A pointer to `count` elements: structs with pointers are deep-copied, in only."""
        if pointer_free(elem, structs):
            return Marshal(kind, count, elem), diags
        if elem.startswith("["):
            return problem("QPM014", f"{what} points to arrays of structs with pointers, which the split "
                                     "build does not deep-copy; pass a pointer to the structs themselves")
        if kind != "in":
            return problem("QPM014", f"{what} points to structs with pointers and is {how}: such structs "
                                     "are deep-copied in only, so pass them as QPM_IN (or through a const "
                                     "pointer) and return results some other way")
        return Marshal("deep_in", count, elem), diags

    handle = process_local(p.type)
    if handle is not None and (ann is None or ann.kind in POINTER_KINDS):
        # QPM_OPAQUE suits a handle the receiving side only holds (or hands back); one it uses
        # itself (hands to the C library) has to stay with the process it belongs to.
        name, _ = handle
        use = _uses_note(model, fn, p, domain_of)
        opaque_ok = is_pointer(p.type_enc) and name not in _NOT_OPAQUE and use is None
        fix = _fixit(p, "QPM_OPAQUE") if opaque_ok and ann is None else ()
        return problem("QPM017", f"{what} {_handle_reason(name, opaque_ok)}", fix,
                       (use,) if use is not None else ())

    if ann is not None:
        if ann.kind in POINTER_KINDS:
            elem = pointee(enc)
            if is_pointer(_strip_arrays(elem)):
                return problem("QPM012", f"{what}: {ann} cannot copy pointers to pointers; "
                                         "pass the pointed-to data in a struct with QPM_COUNT fields")
            bad = bad_struct(elem, "points to")
            if bad:
                return bad
            return pointed(ann.kind, ann.arg, elem, str(ann))
        if ann.kind == "callback" and is_pointer(enc) and is_function(pointee(enc)):
            spelling = function_spelling(pointee(enc))
            bad = callback_signature(spelling)[2]
            if bad is not None:
                return problem("QPM013", f"{what} is a callback of type '{spelling}', which passes '{bad}': "
                                         "calls come back across the boundary with scalar arguments and "
                                         "results only (integers, floating point, enums)")
        return Marshal(ann.kind), diags     # string, opaque, callback, fd: validated in check_annotations

    if not is_pointer(enc):
        if is_function(enc):
            return problem("QPM013", f"{what} is a function without QPM_CALLBACK")
        bad = bad_struct(enc, "is")
        if bad:
            return bad
        kind = "struct" if enc[:1] in ("S", "U") else "scalar"
        if kind == "struct" and not pointer_free(enc, structs):
            kind = "deep"
        return Marshal(kind), diags

    inner = pointee(enc)
    const = enc.startswith("*c")
    length = _length_param(fn, p)
    n = array_length(p)
    count = str(n) if n is not None else "1"
    if is_function(inner):
        return problem("QPM013", f"{what} is a function pointer; mark it QPM_CALLBACK "
                                 "to have calls come back across the boundary",
                       _fixit(p, "QPM_CALLBACK"))
    owner = param_flow(model, fn, p.index, _takes_memory, domain_of) if fn.defined else None
    if owner:
        last = owner[-1]
        return problem("QPM010" if inner == "V" else "QPM011",
                       f"{what} is memory of the caller's process that '{fn.name}' hands to "
                       f"'{last.callee_name}': a copy cannot be freed or resized for the caller; keep "
                       f"'{fn.name}' in its callers' domain", (),
                       (Note(f"'{last.callee_name}' takes it here", last.location),))
    if inner == "V":
        copy = _copy_annotation(model, fn, p, const, domain_of) if length else ""
        fix = _fixit(p, f"{copy}({length.name})") if length else ()
        hint = f"; {copy}({length.name}) copies {length.name} bytes" if length else ""
        return problem("QPM010", f"{what} has no annotation: say how "
                                 f"much to copy with QPM_IN/QPM_OUT/QPM_INOUT(count), or QPM_OPAQUE{hint}", fix)
    if inner.startswith("B") and inner[1:] in _CHARS and n is None:
        if length:
            hint = f"{_copy_annotation(model, fn, p, const, domain_of)}({length.name})"
        elif not const and writes_only(model, fn, p.index, domain_of):
            # A buffer the callee fills is no string to copy in; its size is not in sight.
            return problem("QPM011", f"{what} has no annotation, and '{fn.name}' only writes through it: "
                                     "say how much it fills with QPM_OUT(count)")
        else:
            hint = "QPM_STRING"
        return problem("QPM011", f"{what} has no annotation: is it a string "
                                 f"(QPM_STRING) or a buffer (QPM_IN/QPM_OUT/QPM_INOUT(count))? "
                                 f"Perhaps {hint}", _fixit(p, hint))
    if is_pointer(_strip_arrays(inner)):
        return problem("QPM012", f"{what} points to pointers, which cannot be copied; "
                                 "pass the data in a struct with QPM_COUNT fields, or mark it QPM_OPAQUE")
    bad = bad_struct(inner, "points to")
    if bad:
        return bad
    copy = "QPM_IN" if const else "QPM_INOUT"
    return pointed("in" if const else "inout", count, inner,
                   f"{copy}({count}) by default (not const)" if not const else copy)


def classify_return(model: ProgramModel, fn: Function, severity: str, context: str,
                    roots: dict[str, list[Note]] | None = None) -> tuple[Marshal | None, list[Diagnostic]]:
    enc = fn.return_enc
    if enc == "V":
        return Marshal("void"), []
    if fn.annotation("fd") and is_descriptor(enc):
        return Marshal("fd"), []
    if is_pointer(enc):
        if fn.annotation("opaque"):
            return Marshal("opaque"), []
        if fn.annotation("returns_string"):
            return Marshal("string"), []
        # Plain char is text; signed or unsigned char (a digest, a buffer) is bytes: no guess.
        fix = _function_fixit(fn, "QPM_RETURNS_STRING ") if is_char_pointer(enc) and pointee(enc) == "Bchar" else ()
        return None, [Diagnostic(severity, "QPM015",
                                 f"'{fn.name}' is called {context}: it returns a pointer ({fn.return_type}); mark it "
                                 "QPM_OPAQUE (a handle) or QPM_RETURNS_STRING (a string copied to the caller)",
                                 fn.location, fix)]
    why = struct_problems(enc, model.struct_map)
    s = _root_struct(enc, model.struct_map)
    if why and s is not None and roots is not None:
        roots.setdefault(s.usr, []).append(Note(f"'{fn.name}' is called {context}: it returns "
                                                f"'{struct_label(s)}'", fn.location))
        return None, []
    why = why[0] if why else None
    if not why and enc[:1] in ("S", "U") and not pointer_free(enc, model.struct_map):
        why = ("it has pointers, and what they point to would have no owner in the caller's process "
               "(structs with pointers cross as arguments only)")
    if why:
        return None, [Diagnostic(severity, "QPM014", f"'{fn.name}' is called {context}: it returns a struct "
                                                     f"that cannot be copied: {why}", fn.location)]
    if enc[:1] in ("S", "U"):
        return Marshal("struct"), []
    return Marshal("scalar"), []


def _descriptor_problems(model: ProgramModel, fn: Function, p: Param, severity: str, context: str,
                         domain_of: Callable[[str], str | None] | None) -> list[Diagnostic]:
    """An integer parameter that fn's process uses as a file descriptor, without QPM_FD."""
    if p.annotation("fd") or not is_integer(param_enc(p)) or not fn.defined:
        return []
    chain = param_flow(model, fn, p.index, _is_fd_use, domain_of)
    if not chain:
        return []
    fmap = model.function_map
    name = p.name or str(p.index + 1)
    notes = []
    for a in chain[:-1]:
        callee = fmap[a.callee]
        passed = callee.params[a.index].name or str(a.index + 1)
        notes.append(Note(f"'{name}' is passed to '{callee.name}' here (its parameter '{passed}')", a.location))
        name = passed
    last = chain[-1]
    notes.append(Note(f"'{last.callee_name}' uses '{name}' here as a file descriptor", last.location))
    # QPM_FD takes an int: a descriptor held in another integer type is declared int first.
    fits = is_descriptor(param_enc(p))
    advice = ("mark it QPM_FD" if fits else "declare it 'int' and mark it QPM_FD")
    return [Diagnostic(severity, "QPM016",
                       f"'{fn.name}' is called {context}: parameter '{p.name or p.index + 1}' ({p.type}) is a "
                       f"file descriptor (it reaches '{last.callee_name}'), whose number means nothing in another "
                       f"process: {advice} to hand the other side a descriptor of its own for the same open file",
                       p.location, _fixit(p, "QPM_FD") if fits else (), tuple(notes))]


def returned_descriptor(model: ProgramModel, fn: Function,
                        domain_of: Callable[[str], str | None] | None = None) -> list[tuple[str, str, Location]] | None:
    """The chain of returned calls by which fn returns a descriptor a C library call made
    (FD_RETURNERS), through functions of its process; None when it returns none."""
    fmap = model.function_map
    todo, seen = [(fn, None)], {fn.usr}
    while todo:
        nxt = []
        for f, chain in todo:
            for callee, name, loc in f.returned_calls:
                g = fmap.get(callee)
                if g is None or not g.defined:
                    if name in FD_RETURNERS:
                        return _chain_list(((callee, name, loc), chain))
                elif g.usr not in seen and _same_process(model, fn, g, domain_of):
                    seen.add(g.usr)
                    nxt.append((g, ((callee, name, loc), chain)))
        todo = nxt
    return None


def _returned_descriptor_problems(model: ProgramModel, fn: Function, severity: str, context: str,
                                  domain_of: Callable[[str], str | None] | None) -> list[Diagnostic]:
    if fn.annotation("fd") or not is_integer(fn.return_enc) or not fn.defined:
        return []
    chain = returned_descriptor(model, fn, domain_of)
    if not chain:
        return []
    notes = tuple(Note(f"'{name}' returns it here" if i == len(chain) - 1 else f"it comes from '{name}' here", loc)
                  for i, (_, name, loc) in enumerate(chain))
    return [Diagnostic(severity, "QPM016",
                       f"'{fn.name}' is called {context}: it returns a file descriptor (from '{chain[-1][1]}'), "
                       "whose number means nothing in another process: mark it QPM_FD to hand the caller a "
                       "descriptor of its own for the same open file",
                       fn.location, _function_fixit(fn, "QPM_FD "), notes)]


def check_signature(model: ProgramModel, fn: Function, severity: str, context: str,
                    domain_of: Callable[[str], str | None] | None = None,
                    roots: dict[str, list[Note]] | None = None) -> list[Diagnostic]:
    """Every problem with calling fn across a boundary (see classify_param for domain_of and
    roots)."""
    diags: list[Diagnostic] = []
    if fn.variadic:
        diags.append(Diagnostic(severity, "QPM030", f"'{fn.name}' is called {context}: it is variadic, "
                                                    "and variadic arguments cannot be marshalled", fn.location))
    for p in fn.params:
        diags += classify_param(model, fn, p, severity, context, domain_of, roots)[1]
        diags += _descriptor_problems(model, fn, p, severity, context, domain_of)
    diags += classify_return(model, fn, severity, context, roots)[1]
    diags += _returned_descriptor_problems(model, fn, severity, context, domain_of)
    return diags


class Signatures:
    """What check_signature found for each function called across a boundary, with what of the
    model it read to find it (the functions, the parameter flows and the structs it looked up),
    so that a later model, made by an edit, reuses each finding whose reads are all the same in
    it: a finding depends on nothing else but the function, the severity, the words of the
    crossing and domain_of, which must be the same in both runs.

    entries, from an earlier run: (usr, severity, context) -> (reads, diagnostics, roots noted);
    made_from, the model they were found in (None: none can be reused), or current: they were
    found in the model checked now; made, this run's."""

    def __init__(self, entries: dict | None = None, made_from: ProgramModel | None = None,
                 current: bool = False):
        self.entries = entries or {}
        self.made_from = made_from
        self.current = current      # the entries were made from the very model checked
        self.made: dict = {}
        self.compared: dict = {}    # read -> whether it is the same in made_from and the model checked

    def check(self, model: ProgramModel, fn: Function, severity: str, context: str,
              domain_of: Callable[[str], str | None] | None,
              roots: dict[str, list[Note]]) -> list[Diagnostic]:
        """check_signature(model, fn, …), or the finding of the earlier model when it holds."""
        key = (fn.usr, severity, context)
        old = self.entries.get(key)
        if old is not None and (self.current or self.made_from is not None and
                                _same_reads(self.made_from, model, old[0], self.compared)):
            entry = old
        else:
            reading = _Reading(model)
            found: dict[str, list[Note]] = {}
            diags = check_signature(reading, fn, severity, context, domain_of, found)
            reading.reads.add(("function_map", fn.usr))
            entry = (frozenset(reading.reads), tuple(diags),
                     tuple((usr, note) for usr, notes in found.items() for note in notes))
        self.made[key] = entry
        for usr, note in entry[2]:
            roots.setdefault(usr, []).append(note)
        return list(entry[1])


_READ_MAPS = ("function_map", "struct_map", "arguments_by_param")

# What a check uses of an entry of a model's map (Signatures compares only that): a parameter's
# flow (param_flow) uses of a function whether it is defined, its parameters' number and where
# it runs, and of the calls a parameter is passed to, whom they call, where and which argument.
_VIEWS = {
    ("function_map", "defined"): lambda f: None if f is None else f.defined,
    ("function_map", "flow"): lambda f: None if f is None else (f.usr, f.defined, len(f.params), f.per_unit,
                                                                 f.component),
    ("arguments_by_param", "flow"): lambda args: None if args is None else
        tuple((a.callee, a.index, a.callee_name, a.caller, a.param) for a in args),
}


def _seen_as(mapping, key, view: str):
    """mapping.get(key); a model read for Signatures notes only what the view takes of it."""
    if isinstance(mapping, _ReadingMap):
        return mapping.get_viewed(key, view)
    return mapping.get(key)


def _same_reads(old: ProgramModel, new: ProgramModel, reads, compared: dict) -> bool:
    """Whether everything read of old (Signatures) is the same in new; compared keeps the answer
    for each read, for the findings that share it."""
    if old is new:
        return True
    maps = None
    for read in reads:
        same = compared.get(read)
        if same is None:
            name, key = read[0], read[1]
            if name is None:        # a whole attribute
                a, b = getattr(old, key), getattr(new, key)
            else:
                if maps is None:
                    maps = {n: (getattr(old, n), getattr(new, n)) for n in _READ_MAPS}
                was, now = maps[name]
                a, b = was.get(key), now.get(key)
                if type(a) is tuple and type(b) is tuple and len(a) == len(b) and all(map(operator.is_, a, b)):
                    b = a               # the same objects (arguments an edit did not touch)
                elif a is not b and len(read) == 3:   # what a view takes of an entry
                    view = _VIEWS[name, read[2]]
                    a, b = view(a), view(b)
            same = compared[read] = a is b or a == b
        if not same:
            return False
    return True


class _Reading:
    """A model that notes what is read of it (Signatures): the entries of its maps by key, any
    other attribute whole."""

    def __init__(self, model: ProgramModel):
        self.model = model
        self.reads: set[tuple] = set()
        for name in _READ_MAPS:
            setattr(self, name, _ReadingMap(getattr(model, name), name, self.reads))

    def __getattr__(self, name: str):
        self.reads.add((None, name))
        return getattr(self.model, name)


class _ReadingMap:
    """A mapping that notes the keys looked up in it (any other use reads it whole)."""

    def __init__(self, mapping: dict, name: str, reads: set):
        self.mapping = mapping
        self.name = name
        self.reads = reads

    def get(self, key, default=None):
        self.reads.add((self.name, key))
        return self.mapping.get(key, default)

    def get_viewed(self, key, view: str):
        """get(key), noting only what _VIEWS[name, view] takes of the value."""
        self.reads.add((self.name, key, view))
        return self.mapping.get(key)

    def __getitem__(self, key):
        self.reads.add((self.name, key))
        return self.mapping[key]

    def __contains__(self, key) -> bool:
        self.reads.add((self.name, key))
        return key in self.mapping

    def __getattr__(self, attr: str):
        self.reads.add((None, self.name))
        return getattr(self.mapping, attr)

    def __iter__(self):
        self.reads.add((None, self.name))
        return iter(self.mapping)

    def __len__(self) -> int:
        self.reads.add((None, self.name))
        return len(self.mapping)


def report_struct_roots(model: ProgramModel, roots: dict[str, list[Note]], severity: str) -> list[Diagnostic]:
    """One QPM014 per struct that cannot be copied, at its definition, naming every offending
    field, with a note at each crossing that takes it."""
    out = []
    for usr, notes in roots.items():
        s = model.struct_map[usr]
        why = struct_problems(("U" if s.kind == "union" else "S") + usr, model.struct_map)
        uses = sorted(set(notes), key=lambda n: (n.location or Location(""), n.message))
        n = len(uses)
        out.append(Diagnostic(severity, "QPM014",
                              f"'{struct_label(s)}' cannot be copied across a boundary ({n} crossing "
                              f"{'use' if n == 1 else 'uses'}): {'; '.join(why)}", s.location, (), tuple(uses)))
    return out


# Checks that do not depend on where the boundaries are: the annotations themselves.

def check_annotations(model: ProgramModel) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    structs = model.struct_map
    for fn in model.functions:
        if not fn.defined and fn.component is None and not (fn.annotations or any(p.annotations for p in fn.params)):
            continue
        names = None
        for p in fn.params:
            if p.annotations:
                names = names or {q.name: q.type_enc for q in fn.params if q.name}
                what = f"parameter '{p.name or p.index + 1}' of '{fn.name}'"
                for a in p.annotations:
                    out += _param_annotation_problems(fn, p, a, names, what)
        if not fn.annotations:
            continue
        if fn.annotation("init") and (fn.return_enc != "V" or fn.params or fn.variadic):
            out.append(Diagnostic("error", "QPM033", f"QPM_INIT function '{fn.name}' must be 'void "
                                                     f"{fn.name}(void)', not '{fn.signature}'", fn.location))
        rs = fn.annotation("returns_string")
        if rs and not is_char_pointer(fn.return_enc):
            out.append(Diagnostic("error", "QPM022", f"QPM_RETURNS_STRING on '{fn.name}', which returns "
                                                     f"'{fn.return_type}', not 'char *'", fn.location))
        if fn.annotation("opaque") and not is_pointer(fn.return_enc):
            out.append(Diagnostic("error", "QPM023", f"QPM_OPAQUE on '{fn.name}', which does not "
                                                     "return a pointer", fn.location))
        if fn.annotation("fd") and not is_descriptor(fn.return_enc):
            out.append(Diagnostic("error", "QPM023", f"QPM_FD on '{fn.name}', which returns "
                                                     f"'{fn.return_type}', not 'int': a descriptor crosses "
                                                     "as an int parameter or an int result", fn.location))
    for g in model.globals:
        if any(a.kind == "fd" for a in g.annotations):
            out.append(Diagnostic("error", "QPM023", f"QPM_FD on global '{g.name}': a descriptor crosses "
                                                     "as an int parameter or an int result", g.location))
        if g.shared and not pointer_free(g.type_enc, structs):
            out.append(Diagnostic("error", "QPM031", f"QPM_SHARED global '{g.name}' ({g.type}) holds "
                                                     "pointers, which mean nothing in another process", g.location))
    for s in model.structs:
        fields = None
        for f in s.fields:
            if f.annotations and fields is None:
                fields = {f.name: f.type_enc for f in s.fields}
            for a in f.annotations:
                what = f"field '{f.name}' of '{s.kind} {s.name or '(anonymous)'}'"
                if a.kind == "count":
                    if not is_pointer(f.type_enc):
                        out.append(Diagnostic("error", "QPM023", f"QPM_COUNT on {what}, which is not a pointer", f.location))
                    for code, msg in count_problems(a.arg, fields):
                        out.append(Diagnostic("error", "QPM025" if code == "QPM020" else code,
                                              msg.replace("names no parameter", "names no sibling field"), f.location))
                elif a.kind == "string" and not is_char_pointer(f.type_enc):
                    out.append(Diagnostic("error", "QPM022", f"QPM_STRING on {what} ({f.type}), which is not a char pointer", f.location))
                elif a.kind == "opaque" and not is_pointer(f.type_enc):
                    out.append(Diagnostic("error", "QPM023", f"QPM_OPAQUE on {what}, which is not a pointer", f.location))
                elif a.kind not in ("count", "string", "opaque"):
                    out.append(Diagnostic("error", "QPM023", f"{a} cannot annotate a struct field ({what})", f.location))
    return out


def _param_annotation_problems(fn: Function, p: Param, a: Annotation, names: dict[str, str],
                               what: str) -> list[Diagnostic]:
    out = []
    enc = param_enc(p)
    if a.kind in POINTER_KINDS:
        if not is_pointer(enc):
            out.append(Diagnostic("error", "QPM023", f"{a} on {what}, which is not a pointer ({p.type})", p.location))
        for code, msg in count_problems(a.arg, names):
            out.append(Diagnostic("error", code, f"{what}: {msg}", p.location))
    elif a.kind == "string":
        if not is_char_pointer(enc):
            out.append(Diagnostic("error", "QPM022", f"QPM_STRING on {what} ({p.type}), which is not a char pointer", p.location))
    elif a.kind == "opaque":
        if not is_pointer(p.type_enc):
            out.append(Diagnostic("error", "QPM023", f"QPM_OPAQUE on {what}, which is not a pointer ({p.type})", p.location))
    elif a.kind == "callback":
        if not is_pointer(enc) or not is_function(pointee(enc)):
            out.append(Diagnostic("error", "QPM023", f"QPM_CALLBACK on {what}, which is not a function pointer ({p.type})", p.location))
    elif a.kind == "fd":
        if not is_descriptor(enc):
            out.append(Diagnostic("error", "QPM023", f"QPM_FD on {what}, which is not an int ({p.type})", p.location))
    else:
        out.append(Diagnostic("error", "QPM023", f"{a} cannot annotate a parameter ({what})", p.location))
    if len([x for x in p.annotations if x.kind in CROSSING_KINDS]) > 1 \
            and a is p.annotations[-1]:
        kinds = ", ".join(str(x) for x in p.annotations)
        out.append(Diagnostic("error", "QPM024", f"{what} has more than one way to cross: {kinds}", p.location))
    return out


# Checks that depend on the boundaries.

def is_direct_only(fn: Function) -> bool:
    """A static function: called directly by code of its own file, never through a stub, so it
    runs wherever its callers run and a call to it never crosses (see ProgramModel.hosts)."""
    return fn.linkage == "internal"


def domains_running(model: ProgramModel, domain_of: Callable[[str], str | None], usr: str) -> frozenset:
    """The domains whose processes run a function's code: its component's, or for a static
    function those of its callers (ProgramModel.hosts).  Empty for what no component defines."""
    return _domains(model.hosts.get(usr, ()), domain_of)


def _domains(components, domain_of: Callable[[str], str | None]) -> frozenset:
    """The domains of these components (None, for what is no part of the program, left out)."""
    return frozenset(domain_of(c) for c in components) - {None}


def domains_running_of(model: ProgramModel, domain_of: Callable[[str], str | None]) -> Callable[[str], frozenset]:
    """domains_running(model, domain_of, usr) as a function of usr, worked out once for each set
    of components that host functions (most functions share theirs)."""
    hosts = model.hosts
    known: dict[frozenset, frozenset] = {}

    def runs_in(usr: str) -> frozenset:
        components = hosts.get(usr, frozenset())
        found = known.get(components)
        if found is None:
            found = known[components] = _domains(components, domain_of)
        return found
    return runs_in


def _one_domain(model: ProgramModel, domain_of: Callable[[str], str | None]) -> bool:
    """Whether every component of the model (ProgramModel.components names each one a function
    has) runs in one domain (a program of one file, say): then nothing crosses a boundary, and
    every function runs there or nowhere."""
    domains = {domain_of(c.name) for c in model.components}
    return len(domains) <= 1 and None not in domains


def check_boundaries(model: ProgramModel, domain_of: Callable[[str], str | None], severity: str,
                     describe: Callable[[str, str], str], signatures: Signatures | None = None) -> list[Diagnostic]:
    """Problems with every call that crosses between two domains.

    domain_of maps a component to its domain (None: not part of the program); describe(a, b)
    words the crossing for messages ("across the boundary from 'net' to 'store'").  signatures,
    when given, holds what check_signature found in an earlier model with the same domain_of,
    reused where it still holds, and takes what it finds in this one.
    """
    if _one_domain(model, domain_of):
        return []
    out: list[Diagnostic] = []
    checked: set[str] = set()
    roots: dict[str, list[Note]] = {}
    fmap = model.function_map
    runs_in = domains_running_of(model, domain_of)
    ordered: dict[frozenset, list] = {}         # each set of domains, sorted once
    for e in model.edges:
        if e.callee in checked:
            continue
        callee = fmap[e.callee]
        if callee.component is None or is_direct_only(callee):
            continue
        db = domain_of(callee.component)
        running = runs_in(e.caller)
        in_order = ordered.get(running)
        if in_order is None:
            in_order = ordered[running] = sorted(running, key=str)
        da = next((d for d in in_order if d != db), db)
        if da == db:
            continue
        checked.add(e.callee)
        if signatures is not None:
            out += signatures.check(model, callee, severity, describe(da, db), domain_of, roots)
        else:
            out += check_signature(model, callee, severity, describe(da, db), domain_of, roots)
    out += report_struct_roots(model, roots, severity)
    for g in model.globals:
        if not g.writers or g.shared or read_only(g.type):
            continue
        users = [u for u in {*g.readers, *g.writers} if u in fmap]
        domains = sorted({d for u in users for d in runs_in(u)} - {None})
        if len(domains) > 1:
            touchers = sorted((fmap[u] for u in users), key=lambda f: (f.location, f.usr))
            names = ", ".join(f"'{d}'" for d in domains)
            if pointer_free(g.type_enc, model.struct_map):
                advice = "mark it QPM_SHARED (pointer-free data travelling with each call) or keep them together"
            else:
                enc = _strip_arrays(g.type_enc)
                held = ("a function pointer, which means" if is_pointer(enc) and is_function(pointee(enc))
                        else "a pointer, which means" if is_pointer(enc) else "pointers, which mean")
                advice = (f"it holds {held} nothing in another process and cannot travel with calls "
                          "(QPM_SHARED is for pointer-free data): keep the functions that use it in one domain")
            # A note at the first function of each domain that writes it, and of each that reads it.
            notes, shown = [], set()
            for f in touchers:
                if f.per_unit:
                    continue
                verb = "writes" if f.usr in g.writers else "reads"
                for d in sorted(runs_in(f.usr)):
                    if (d, verb) not in shown:
                        shown.add((d, verb))
                        notes.append(Note(f"'{f.name}' {verb} it (in '{d}')", f.location))
            out.append(Diagnostic(severity, "QPM032",
                                  f"global '{g.name}' is written and used by {names}, which would run in "
                                  f"separate processes: {advice}", g.location, (), tuple(notes)))
    for ic in model.indirect_calls:
        d = indirect_problem(model, ic, domain_of, checked, severity, describe)
        if d is not None:
            out.append(d)
    out += _thread_entries(model, domain_of, severity, describe, runs_in)
    return out


def _thread_entries(model: ProgramModel, domain_of: Callable[[str], str | None], severity: str,
                    describe: Callable[[str, str], str], where: Callable[[str], set[str]]) -> list[Diagnostic]:
    """A function started as a thread (pthread_create, thrd_create) from another domain: a thread
    runs in the process that starts it, where that function is not linked."""
    out = []
    fmap = model.function_map
    for a in model.arguments:
        if a.function is None or THREAD_STARTERS.get(a.callee_name) != a.index or not _external(model, a):
            continue
        entry = fmap.get(a.function)
        if entry is None or not entry.defined or entry.per_unit or entry.component is None:
            continue
        de = domain_of(entry.component)
        for dc in sorted(where(a.caller)):
            if dc == de:
                continue
            out.append(Diagnostic(
                severity, "QPM037",
                f"'{entry.name}' is started as a thread by '{fmap[a.caller].name}' {describe(dc, de)}: a "
                f"thread runs in the process that starts it, and '{entry.name}' belongs to another one; start "
                f"the thread from a function of '{de}', or keep both in one domain", a.location, (),
                (Note(f"'{entry.name}' is defined here, in component '{entry.component}'", entry.location),)))
    return out


SHOWN_TARGETS = 3


def far_targets(model: ProgramModel, ic: IndirectCall, domain_of: Callable[[str], str | None],
                called_across: set[str]) -> list[tuple[str, str]]:
    """The targets of an indirect call that another domain's process runs, each with a domain
    that runs the caller and not the target ((caller's domain, target)).  The caller runs where
    domains_running says (a static caller or a header's static helper runs with its callers); a
    static target runs where its address is taken, and a call to it never crosses.  None when the
    pointer came across as a QPM_CALLBACK parameter (calls through it come back across the
    boundary), or is a parameter without it of a function called across a boundary (QPM013
    reports that parameter)."""
    fmap = model.function_map
    caller = fmap[ic.caller]
    if ic.param is not None and ic.param < len(caller.params):
        if caller.params[ic.param].annotation("callback") or ic.caller in called_across:
            return []
    here = sorted(domains_running(model, domain_of, ic.caller), key=str)
    out = []
    for t in ic.targets:
        target = fmap[t]
        if target.component is None or is_direct_only(target):
            continue
        there = domain_of(target.component)
        d = next((d for d in here if d != there), None)
        if there is not None and d is not None:
            out.append((d, t))
    return out


def indirect_problem(model: ProgramModel, ic: IndirectCall, domain_of: Callable[[str], str | None],
                     called_across: set[str], severity: str,
                     describe: Callable[[str, str], str]) -> Diagnostic | None:
    """QPM035: an indirect call that may reach a function of another domain, located at the call,
    with a note where each named target's address is taken."""
    fmap = model.function_map
    far = sorted(far_targets(model, ic, domain_of, called_across), key=lambda x: (fmap[x[1]].name, x[1]))
    if not far:
        return None
    here, first = far[0]
    there = domain_of(fmap[first].component)
    names = ", ".join(f"'{fmap[t].name}'" for _, t in far[:SHOWN_TARGETS])
    if len(far) > SHOWN_TARGETS:
        names += f" and {len(far) - SHOWN_TARGETS} more"
    notes = tuple(Note(f"the address of '{fmap[t].name}' ('{domain_of(fmap[t].component)}') is taken here",
                       ic.target_origin(t))
                  for _, t in far[:SHOWN_TARGETS] if ic.target_origin(t) is not None)
    return Diagnostic(severity, "QPM035",
                      f"indirect call through '{ic.through}' in '{fmap[ic.caller].name}' may reach {names} "
                      f"{describe(here, there)}: a function in another process is callable only through a pointer "
                      "that came across as a QPM_CALLBACK parameter", ic.location, (), notes)


def sorted_unique(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diags), key=Diagnostic.sort_key)
