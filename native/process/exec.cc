#include "process/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace strait::process {

namespace {

Napi::Value Exec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
    throw Napi::TypeError::New(env, "execv(path: string, argv: string[])");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::string> args;
  args.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsString()) throw Napi::TypeError::New(env, "execv: argv must hold strings only");
    args.push_back(v.As<Napi::String>().Utf8Value());
  }
  if (args.empty()) throw Napi::TypeError::New(env, "execv: argv needs at least argv[0]");
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Node marks stdin, stdout and stderr close-on-exec at start-up: the new image would start
  // without them (and print nothing). Other fds keep their flags; restored if execv fails.
  int stdio_flags[3];
  for (int fd = 0; fd < 3; fd++) {
    stdio_flags[fd] = fcntl(fd, F_GETFD);
    if (stdio_flags[fd] >= 0 && (stdio_flags[fd] & FD_CLOEXEC) != 0) fcntl(fd, F_SETFD, stdio_flags[fd] & ~FD_CLOEXEC);
  }
  // The environment is inherited as it is (environ): NODE_OPTIONS and the rest go along.
  execv(path.c_str(), argv.data());
  int err = errno;
  for (int fd = 0; fd < 3; fd++) {
    if (stdio_flags[fd] >= 0) fcntl(fd, F_SETFD, stdio_flags[fd]);
  }
  const char* name = strerrorname_np(err);
  Napi::Error e = Napi::Error::New(env, std::string("execv ") + path + ": " + (name != nullptr ? name : "error") + " (" + strerror(err) + ")");
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, name != nullptr ? name : "EUNKNOWN"));
  throw e;
}

}  // namespace

Napi::Function ExecFunction(Napi::Env env) { return Napi::Function::New(env, Exec, "execv"); }

}  // namespace strait::process
