"""The walls around a graded kernel, and nothing else of grading.

* ``sandbox``: the bubblewrap command line of a kernel or a zygote, and who it runs as on the host;
* ``zygote``: the warm process, one per worker in its own sandbox, that forks each kernel into namespaces
  of its own; ``warm``: the grader's pool of zygotes and the runner's client of them;
* ``limits``: the runner's rlimits, its cell watchdog and the watch over memory, processes, files and disk;
* ``supervise``: the runner subprocess and the outer walls around it (notebook time limit, stalls).
"""
