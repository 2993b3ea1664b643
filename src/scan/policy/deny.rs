//! The deny-list: callables known to run commands, load code or touch files.
//! It only raises severity (anything not allowed is already a finding) and
//! is checked segment by segment, so no spelling of a dotted name escapes it.

/// Patterns: a path matches `p` if it is `p` or starts with `p.`.
/// Module aliases are folded first (see [`normalize`]).
const PATTERNS: &[&str] = &[
    // processes, the OS, the interpreter
    "os",
    "subprocess",
    "sys",
    "pty",
    "signal",
    "multiprocessing",
    "asyncio.subprocess",
    "asyncio.create_subprocess_exec",
    "asyncio.create_subprocess_shell",
    "_thread",
    "platform.popen",
    "uuid._get_command_stdout",
    "uuid._popen",
    "commands",
    "popen2",
    // code loading and evaluation
    "builtins.eval",
    "builtins.exec",
    "builtins.execfile",
    "builtins.compile",
    "builtins.getattr",
    "builtins.setattr",
    "builtins.delattr",
    "builtins.__import__",
    "builtins.open",
    "builtins.breakpoint",
    "builtins.input",
    "builtins.globals",
    "builtins.locals",
    "builtins.vars",
    "builtins.exit",
    "builtins.quit",
    "builtins.help",
    "importlib",
    "imp",
    "zipimport",
    "pkgutil",
    "runpy",
    "code",
    "codeop",
    "timeit",
    "cProfile",
    "profile",
    "pdb",
    "bdb",
    "trace",
    "doctest",
    "inspect",
    "gc",
    "site",
    "types.CodeType",
    "types.FunctionType",
    "types.MethodType",
    "types.ModuleType",
    "types.LambdaType",
    "operator.attrgetter",
    "operator.methodcaller",
    "operator.itemgetter",
    "functools.reduce",
    "logging.config",
    "idlelib",
    "lib2to3",
    // serializers that load more code
    "pickle",
    "_pickle",
    "cPickle",
    "pickletools",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "jsonpickle",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "yaml.load_all",
    "yaml.unsafe_load_all",
    "joblib.load",
    "numpy.load",
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.fromfile",
    "numpy.save",
    "numpy.savez",
    "numpy.savez_compressed",
    "numpy.loadtxt",
    "numpy.genfromtxt",
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "pandas.read_pickle",
    "pandas.io",
    "pandas.eval",
    "pandas.core.computation",
    "numexpr",
    "torch.load",
    "torch.serialization.load",
    "torch.hub",
    "torch.package",
    "torch.jit.load",
    "torch.utils.cpp_extension",
    "torch.multiprocessing",
    "torch.distributed.rpc",
    "torch.compile",
    "torch._dynamo",
    "keras.models.load_model",
    "keras.saving.load_model",
    "tensorflow.io",
    "tensorflow.saved_model",
    "sklearn.datasets",
    "sklearn.utils._testing",
    "scipy.io",
    "scipy.weave",
    "scipy._lib._testutils",
    // native code, network, files
    "ctypes",
    "_ctypes",
    "cffi",
    "socket",
    "_socket",
    "ssl",
    "http",
    "urllib",
    "urllib2",
    "urllib3",
    "requests",
    "httpx",
    "ftplib",
    "telnetlib",
    "smtplib",
    "poplib",
    "imaplib",
    "xmlrpc",
    "socketserver",
    "webbrowser",
    "paramiko",
    "shutil",
    "tempfile",
    "glob",
    "io.open",
    "_io",
    "codecs.open",
    "fileinput",
    "sqlite3",
    "dbm",
    "tarfile",
    "zipfile",
    // installers
    "pip",
    "ensurepip",
    "setuptools",
    "distutils",
    "venv",
];

/// Segments that reach a dangerous module from anywhere in a dotted path
/// (`pkg.utils.os.system`): re-exported modules are attributes too.
const SEGMENTS: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "builtins",
    "__builtin__",
    "importlib",
    "runpy",
    "ctypes",
    "marshal",
    "pickle",
    "socket",
    "shutil",
    "pty",
];

/// Function names that run code or commands wherever they live.
const NAMES: &[&str] = &[
    "system",
    "popen",
    "Popen",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "execl",
    "execle",
    "execlp",
    "spawnv",
    "spawnve",
    "spawnl",
    "spawnle",
    "posix_spawn",
    "check_output",
    "check_call",
    "getoutput",
    "getstatusoutput",
    "eval",
    "exec",
    "execfile",
    "__import__",
    "getattr",
    "setattr",
    "delattr",
    "import_module",
    "load_module",
    "run_path",
    "run_module",
    "runstring",
    "runctx",
    "runcall",
    "unsafe_load",
];

/// Dunder attributes allowed as a name segment (copyreg's NEWOBJ helpers).
const DUNDER_OK: &[&str] = &["copyreg.__newobj__", "copyreg.__newobj_ex__"];

/// Folds module aliases: `posix`/`nt` are `os`; `posixpath`/`ntpath` are
/// `os.path`; Python 2 names are their Python 3 modules.
pub(crate) fn normalize(path: &str) -> String {
    let (first, rest) = match path.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (path, None),
    };
    let first = match first {
        "posix" | "nt" | "_posixsubprocess" | "_winapi" => {
            if first == "_posixsubprocess" {
                "subprocess"
            } else {
                "os"
            }
        }
        "posixpath" | "ntpath" | "genericpath" | "macpath" => "os.path",
        "__builtin__" | "__builtins__" => "builtins",
        "copy_reg" => "copyreg",
        "cPickle" => "pickle",
        "urllib2" => "urllib",
        other => other,
    };
    match rest {
        Some(r) => format!("{first}.{r}"),
        None => first.to_string(),
    }
}

/// True if `path` is `pattern` or lies below it.
pub(crate) fn under(path: &str, pattern: &str) -> bool {
    path == pattern
        || (path.len() > pattern.len()
            && path.starts_with(pattern)
            && path.as_bytes().get(pattern.len()) == Some(&b'.'))
}

fn is_dunder(s: &str) -> bool {
    s.len() > 4 && s.starts_with("__") && s.ends_with("__")
}

/// Why `module.name` is dangerous, if it is. `extra` are the user's own
/// deny patterns.
pub(crate) fn denied(module: &str, name: &str, extra: &[String]) -> Option<String> {
    let full = normalize(&format!("{module}.{name}"));
    if let Some(p) = PATTERNS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .find(|p| under(&full, p))
    {
        return Some(format!("on the deny-list ({p})"));
    }
    let module_n = normalize(module);
    let mod_segs = module_n.split('.').count();
    for (i, seg) in full.split('.').enumerate() {
        if i > 0 && SEGMENTS.contains(&seg) {
            return Some(format!("reaches module {seg} through attribute access"));
        }
        if i >= mod_segs && is_dunder(seg) && !DUNDER_OK.contains(&full.as_str()) {
            return Some(format!("accesses the special attribute {seg}"));
        }
    }
    let last = full.rsplit('.').next().unwrap_or(&full);
    if NAMES.contains(&last) {
        return Some(format!("calls {last}, which runs code or commands"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_resolution() {
        let d = |m: &str, n: &str| denied(m, n, &[]).is_some();
        assert!(d("os", "system"));
        assert!(d("posix", "system"));
        assert!(d("nt", "system"));
        assert!(d("os.path", "join"));
        assert!(d("posixpath", "join"));
        assert!(d("builtins", "getattr"));
        assert!(d("__builtin__", "eval"));
        assert!(d("sklearn.utils", "os.system"));
        assert!(d("mypkg", "Foo.__reduce__"));
        assert!(d("mypkg.helpers", "system"));
        assert!(d("numpy.testing._private.utils", "runstring"));
        assert!(d("torch", "load"));
        assert!(d("torch.hub", "load"));
        assert!(d("subprocess", "Popen"));
        assert!(d("_posixsubprocess", "fork_exec"));
        assert!(!d("collections", "OrderedDict"));
        assert!(!d("copyreg", "__newobj__"));
        assert!(!d("numpy.random._pickle", "__randomstate_ctor"));
        assert!(!d("torch._utils", "_rebuild_tensor_v2"));
        assert!(!d("osmodule", "x"));
        assert!(!d("mypkg", "x"));
        assert!(denied("mypkg", "evil", &["mypkg.evil".to_string()]).is_some());
    }

    #[test]
    fn under_is_segment_exact() {
        assert!(under("os.path", "os"));
        assert!(!under("osx.path", "os"));
        assert!(under("os", "os"));
    }
}
