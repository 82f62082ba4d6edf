{
  "targets": [
    {
      "target_name": "nsm",
      "sources": ["src/nsm.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-D_GNU_SOURCE"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
