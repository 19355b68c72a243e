/*
 * qpm.h - Quarantine component and marshalling annotations.
 *
 * Under clang (and libclang, which is what the Quarantine analyzer parses with) every macro
 * becomes __attribute__((annotate("qpm_<kind>:<argument>"))); under any other compiler it
 * vanishes, so the annotated sources build unchanged with gcc.  The argument of a count
 * macro is the C expression text exactly as written, stringized by the preprocessor.
 *
 * The contract for each macro is in the project's SPEC (section 2); in short:
 *
 *   QPM_COMPONENT(name)      function belongs to component `name`
 *   QPM_FILE_COMPONENT(name);  default component of every function defined in this file
 *   QPM_IN(count)            pointer parameter: copy `count` elements in
 *   QPM_OUT(count)           pointer parameter: callee fills `count` elements, copied back
 *   QPM_INOUT(count)         pointer parameter: copied in and back
 *   QPM_STRING               char * parameter or field: NUL-terminated string
 *   QPM_OPAQUE               pointer parameter, field or return: handle passed unchanged
 *   QPM_COUNT(expr)          pointer field: element count, `expr` over sibling fields
 *   QPM_RETURNS_STRING       function returning char *: caller gets a malloc'd copy
 *   QPM_CALLBACK             function-pointer parameter callable from the other side
 *   QPM_SHARED               pointer-free global travelling with every crossing call
 *   QPM_FD                   int parameter or int-returning function: a file descriptor; the
 *                            receiving process gets its own descriptor for the same open file
 *   QPM_INIT                 void f(void) run at every (re)start of the component
 */
#ifndef QPM_H
#define QPM_H

#if defined(__clang__)
#define QPM__ANNOTATE(kind, arg) __attribute__((annotate("qpm_" kind ":" arg)))
/* Counts are macro-expanded before they become text: QPM_OUT(MAXDNAME) is QPM_OUT(1025). */
#define QPM__TEXT(x) #x
#define QPM__EXPANDED(x) QPM__TEXT(x)
#define QPM_COMPONENT(name) QPM__ANNOTATE("component", #name)
/* A file-scope declaration that carries the annotation; never defined, never referenced. */
#define QPM_FILE_COMPONENT(name) \
    extern const char qpm__file_component[] QPM__ANNOTATE("file_component", #name)
#define QPM_IN(count) QPM__ANNOTATE("in", QPM__EXPANDED(count))
#define QPM_OUT(count) QPM__ANNOTATE("out", QPM__EXPANDED(count))
#define QPM_INOUT(count) QPM__ANNOTATE("inout", QPM__EXPANDED(count))
#define QPM_STRING QPM__ANNOTATE("string", "")
#define QPM_OPAQUE QPM__ANNOTATE("opaque", "")
#define QPM_COUNT(expr) QPM__ANNOTATE("count", QPM__EXPANDED(expr))
#define QPM_RETURNS_STRING QPM__ANNOTATE("returns_string", "")
#define QPM_CALLBACK QPM__ANNOTATE("callback", "")
#define QPM_SHARED QPM__ANNOTATE("shared", "")
#define QPM_FD QPM__ANNOTATE("fd", "")
#define QPM_INIT QPM__ANNOTATE("init", "")
#else
/* Other compilers see nothing; QPM_FILE_COMPONENT still needs a declaration for its ';'. */
#define QPM_COMPONENT(name)
#define QPM_FILE_COMPONENT(name) _Static_assert(1, "qpm component " #name)
#define QPM_IN(count)
#define QPM_OUT(count)
#define QPM_INOUT(count)
#define QPM_STRING
#define QPM_OPAQUE
#define QPM_COUNT(expr)
#define QPM_RETURNS_STRING
#define QPM_CALLBACK
#define QPM_SHARED
#define QPM_FD
#define QPM_INIT
#endif

#endif /* QPM_H */
