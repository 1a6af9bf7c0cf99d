"""Keep pytest out of each canary's task material when it walks canaries/.

repo/, hidden/ and solution/ hold the tasks' own tests (some import modules that do not exist on purpose);
only the plugin's canary items belong to a run of `pytest canaries/`.
"""

collect_ignore_glob = ["*/*/repo", "*/*/hidden", "*/*/solution"]
