{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": ["ferry_native.c", "hash.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-O3"],
      "cflags_c": ["-std=gnu11"],
      "libraries": ["-lxxhash"]
    },
    {
      "target_name": "ferry_uffd",
      "type": "executable",
      "sources": ["uffd_handler.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
