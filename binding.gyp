# The Node-API addon; layout and data path in native/README.md. Linux only (accept4,
# SOCK_NONBLOCK, MSG_NOSIGNAL, strerrorname_np). Leak/memory checks: "Valgrind and ASan" in
# native/README.md (valgrind node native/tools/leak-check.mjs).
{
  "targets": [
    {
      "target_name": "strait_native",
      "sources": [
        "native/addon.cc",
        "native/io/env.cc",
        "native/io/js_util.cc",
        "native/io/request_id.cc",
        "native/io/buffer_pool.cc",
        "native/io/socket_util.cc",
        "native/io/acceptor.cc",
        "native/io/connector.cc",
        "native/io/pipe.cc",
        "native/http2/message_check.cc",
        "native/http2/session.cc",
        "native/io/batch_reader.cc",
        "native/io/poller.cc",
        "native/codec/hessian2.cc",
        "native/codec/bolt.cc",
        "native/codec/dubbo.cc",
        "native/codec/codec_js.cc",
        "native/http1/head.cc",
        "native/http1/http1_js.cc",
        "native/upgrade/fd_channel.cc",
        "native/process/exec.cc",
        "native/bpf/bpf_js.cc",
        "native/bpf/original_dst.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      # libnghttp2-dev: headers and a link-time library for native/http2. At run time the node
      # binary's own nghttp2 (exported, already loaded) provides the symbols first.
      "libraries": ["-lnghttp2"],
      # NAPI_VERSION pinned: the addon then loads on every Node release that has Node-API 8
      # (Node >= 12.22 / 14.17 / 15.12), whatever headers it was built against.
      # NAPI_CPP_EXCEPTIONS: argument and set-up errors are thrown as C++ Napi::Error and
      # become JS exceptions; the data path itself never throws (it reports status codes).
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      # BPF (bpf/*.bpf.c + native/bpf/loader.cc) only where bpf/detect.sh finds clang, bpftool,
      # libbpf, libelf and kernel BTF; elsewhere the addon builds and reports BPF unavailable.
      "variables": { "strait_bpf%": "<!(sh bpf/detect.sh)" },
      "conditions": [
        ["strait_bpf==1", {
          "sources": ["native/bpf/loader.cc"],
          "defines": ["STRAIT_HAVE_BPF"],
          "include_dirs": ["bpf", "<(SHARED_INTERMEDIATE_DIR)/bpf"],
          "libraries": ["-lbpf", "-lelf"],
          "actions": [{
            "action_name": "bpf_skeletons",
            "inputs": ["bpf/build.sh", "bpf/intercept.h", "bpf/maps.bpf.h", "bpf/bulk_maps.bpf.h", "bpf/sockops.bpf.c", "bpf/redirect.bpf.c", "bpf/capture_maps.bpf.h", "bpf/capture.bpf.c"],
            # One output (redirect.skel.h and capture.skel.h come with it): gyp's make backend re-runs actions
            # with several outputs on every build.
            "outputs": ["<(SHARED_INTERMEDIATE_DIR)/bpf/sockops.skel.h"],
            "action": ["sh", "bpf/build.sh", "<(SHARED_INTERMEDIATE_DIR)/bpf"]
          }]
        }]
      ]
    }
  ]
}
