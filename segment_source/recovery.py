"""Before a run: finish or roll back what an interrupted run left behind.

dlt resumes a package whose load was killed by re-running the jobs that were not yet marked
done. A job whose insert had committed just before the kill runs twice, and the staging rows it
loads twice become duplicate rows in merged tables (dlt issues #3023 and #2837; dlt 1.31 narrows
the window, it cannot close it). Packages that never started loading are safe to resume. A
package whose load started is aborted instead: dlt rolls the pipeline state back to where that
package started, and the run reads the workspace again. Every merge of this source is scoped and
idempotent, so what the aborted package already merged is simply merged again.
"""

import logging
from typing import List

import dlt

logger = logging.getLogger("segment_source")


def recover_interrupted_load(pipeline: dlt.Pipeline) -> List[str]:
    """Abort pending packages whose load started; return their load ids."""
    started = []
    for load_id in pipeline.list_normalized_load_packages():
        jobs = pipeline.get_load_package_info(load_id).jobs
        if jobs.get("started_jobs") or jobs.get("completed_jobs") or jobs.get("failed_jobs"):
            started.append(load_id)
    if started:
        logger.warning(
            "The previous run was interrupted while loading (package %s). It is rolled back and"
            " this run reads the workspace again; nothing already loaded is lost.",
            ", ".join(started),
        )
        pipeline.abort_packages()
    return started
