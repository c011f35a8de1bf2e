// Replacing the process image: the launcher (bin/strait.js) starts node again with options that
// only the command line can set (the size of V8's thread pool, its GC threads). Node 20 has no
// process.execve; a spawned child would leave a second node process around for its lifetime.
#pragma once
#include <napi.h>

namespace strait::process {

// execv(path, argv): does not return when it succeeds (same pid, open fds without FD_CLOEXEC
// kept); throws an Error with the errno's name when it fails, the process unchanged.
Napi::Function ExecFunction(Napi::Env env);

}  // namespace strait::process
