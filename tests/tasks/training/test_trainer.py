import pytest

from infra.storage import RunDir, write_json
from tasks.training.trainer import check_resumable


def test_resume_on_another_number_of_ranks_is_refused(tmp_path):
    run = RunDir(tmp_path)
    check_resumable(run, 2)  # a fresh run has nothing to resume
    write_json(run.train_state, {"step": 6, "world_size": 2, "data": {"samples": 96}})
    check_resumable(run, 2)
    with pytest.raises(ValueError, match="written by 2 ranks; resume with --set training.num_workers=2"):
        check_resumable(run, 4)
