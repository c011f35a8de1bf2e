{
  "targets": [
    {
      "target_name": "strait_native",
      "sources": [
        "native/addon.cc",
        "native/io/env.cc",
        "native/io/buffer_pool.cc",
        "native/io/socket_util.cc",
        "native/io/acceptor.cc",
        "native/io/connector.cc",
        "native/io/pipe.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
