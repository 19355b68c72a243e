"""Per-domain objects of a source file whose functions land in several domains.

A plan places functions, not files.  In the split build, a source file all of whose code runs
in one domain links into that domain's executable as its one object, build/obj/<file>.o, the
same object every variant (the monolithic one too) links.  A file the plan splits is compiled
once more, in the split variant's own build directory and only there, with SPLIT_FLAGS:

    -fPIC -fsemantic-interposition   every function with external linkage may be interposed,
        so gcc takes nothing for granted about one: it does not inline it into a caller, clone
        it for constant or scalarised arguments (IPA-CP, IPA-SRA), split it, or assume which
        registers it clobbers (IPA-RA) or what memory it touches (pure-const, modref).  Each
        call to it is a call, made through a relocation against its name (`call f@PLT`),
        and each use of its address one too.  Interposition is -fPIC's default: spelled out,
        it overrides a -fno-semantic-interposition of the program's own flags.
    -ffunction-sections -fdata-sections   each function and variable in a section of its own,
        which a link can drop.
    -fvisibility=default -fno-lto -fno-whole-program   the program's own flags cannot bind a
        function to its definition in the file, and the object holds machine code.

Functions declared `inline`, and those given hidden or protected visibility, are exceptions gcc
makes to interposition (their bodies may still be copied into callers): `qtool check` refuses one
whose callers compiled with it run in another domain (QPM044), and domain_object() refuses such
a hidden one that check could not see (made hidden by a visibility pragma).

From that object, domain_object() makes each executable's own: every function of the file that
runs in another domain becomes an undefined symbol (its symbol table entry gets SHN_UNDEF), so
that the link resolves every reference to it to the generated stub of that name; then a
relocatable link with --gc-sections, rooted at every section defining a global symbol that is
left (the executable's own functions, and every variable of the file: one definition per
process), drops the code of those functions, their unwind entries, and whatever only they used
(static helpers, constants, jump tables).  A static function stays in every executable whose
code calls it: it runs wherever its callers run.  Constructors stay in every one.

Only weakening those functions (objcopy --weaken-symbol) would not do: their code would stay,
and with it references to functions and variables that this executable does not have.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile

from .errors import UserError

SPLIT_FLAGS = ("-fPIC", "-fsemantic-interposition", "-ffunction-sections", "-fdata-sections",
               "-fvisibility=default", "-fno-lto", "-fno-whole-program")

_SHT_SYMTAB = 2
_SHN_UNDEF = 0
_STB_GLOBAL, _STB_WEAK = 1, 2
_STT_NOTYPE, _STT_FUNC = 0, 2
_VISIBILITY = {1: "internal", 2: "hidden", 3: "protected"}


class _Elf:
    """The symbol table of an ELF relocatable object, read in place (32 or 64 bits, either byte
    order): what domain_object needs, no more."""

    def __init__(self, data: bytes, path: str):
        if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
            raise UserError("not an ELF object, so its functions cannot be placed apart", path)
        self.data = bytearray(data)
        self.is64 = data[4] == 2
        self.end = "<" if data[5] == 1 else ">"
        if struct.unpack_from(self.end + "H", data, 16)[0] != 1:
            raise UserError("not a relocatable object (ET_REL)", path)
        if self.is64:
            shoff, = struct.unpack_from(self.end + "Q", data, 0x28)
            shentsize, shnum = struct.unpack_from(self.end + "HH", data, 0x3A)
            self.sym_format = self.end + "IBBHQQ"
        else:
            shoff, = struct.unpack_from(self.end + "I", data, 0x20)
            shentsize, shnum = struct.unpack_from(self.end + "HH", data, 0x2E)
            self.sym_format = self.end + "IIIBBH"
        section = self.end + ("IIQQQQIIQQ" if self.is64 else "IIIIIIIIII")
        self.sections = [struct.unpack_from(section, data, shoff + i * shentsize) for i in range(shnum)]

    def symbols(self):
        """(offset of the entry, name, binding, type, visibility, section index) of each symbol."""
        for _, typ, _, _, off, size, link, _, _, entsize in self.sections:
            if typ != _SHT_SYMTAB or not entsize:
                continue
            strings = self.sections[link][4]
            for k in range(1, size // entsize):
                at = off + k * entsize
                fields = struct.unpack_from(self.sym_format, self.data, at)
                if self.is64:
                    name, info, other, shndx, _, _ = fields
                else:
                    name, _, _, info, other, shndx = fields
                start = strings + name
                text = bytes(self.data[start:self.data.index(b"\0", start)]).decode("utf-8", "replace")
                yield at, text, info >> 4, info & 0xF, other & 3, shndx

    def undefine(self, at: int) -> None:
        """Makes the symbol at this entry an undefined global: a reference, resolved elsewhere."""
        fields = struct.unpack_from(self.sym_format, self.data, at)
        info = (_STB_GLOBAL << 4) | _STT_NOTYPE
        if self.is64:
            name, _, other, _, _, _ = fields
            struct.pack_into(self.sym_format, self.data, at, name, info, other, _SHN_UNDEF, 0, 0)
        else:
            name, _, _, _, other, _ = fields
            struct.pack_into(self.sym_format, self.data, at, name, 0, 0, info, other, _SHN_UNDEF)


def domain_object(cc: list[str], compiled: str, out: str, source: str, functions: dict[str, dict],
                  domain: str) -> None:
    """Writes `out`: the object `compiled` (the split compile of `source`) holding only the code
    that runs in `domain`.  `functions` maps each function of the file with external linkage to
    {"domain": where it runs, "called_from": the other domains where its callers in the file
    run} (stubgen.Layout.split).  `cc` is the C compiler driver, for the relocatable link.  A
    file that cannot be placed this way is a UserError naming the function."""
    with open(compiled, "rb") as f:
        elf = _Elf(f.read(), compiled)
    for at, name, bind, typ, vis, shndx in list(elf.symbols()):
        if shndx == _SHN_UNDEF or bind not in (_STB_GLOBAL, _STB_WEAK) or typ != _STT_FUNC:
            continue
        if name not in functions:
            raise UserError(f"the split compile defines function symbol '{name}', which is the name of none "
                            "of this file's functions (an asm label, or an asm block?), so the functions of "
                            "this file cannot be placed apart: keep them in one domain", source)
        if vis and functions[name]["called_from"]:
            raise UserError(f"'{name}' has {_VISIBILITY[vis]} visibility, so gcc may copy its body into its "
                            f"callers in this file, which run in domain '{functions[name]['called_from'][0]}': "
                            "it cannot run apart from them; drop the visibility pragma (or attribute) for "
                            "the calls to cross", source)
        if functions[name]["domain"] != domain:
            elf.undefine(at)
    directory = os.path.dirname(out)
    os.makedirs(directory, exist_ok=True)
    fd, edited = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", suffix=".o", dir=directory)
    linked = edited[:-2] + ".r.o"
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(elf.data)
        cmd = [*cc, "-nostdlib", "-r", "-Wl,--gc-sections", "-Wl,--gc-keep-exported", edited, "-o", linked]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"the relocatable link of its code for domain '{domain}' failed: "
                            f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}".rstrip(), source)
        os.replace(linked, out)
    finally:
        for path in (edited, linked):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
