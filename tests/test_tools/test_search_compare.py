"""tools/analysis/search_compare.py on a tiny checkpoint: every solver x
objective gets its budget on the same D_val, with the D_val segm mAP at the
best rho and each objective's rank correlation with it."""
import json

from bipa.datasets.synthetic import generate_synthetic_dataset
from tests.conftest import init_checkpoint, load_tool


def test_solvers_and_objectives_on_one_checkpoint(e2e_data, tmp_path, capsys):
    compare = load_tool('analysis/search_compare')
    from mmengine.config import Config
    checkpoint = init_checkpoint(Config.fromfile(e2e_data['config']), tmp_path)

    work = tmp_path / 'compare'
    fresh = tmp_path / 'fresh'  # other scenes, 96x64 (W x H)
    generate_synthetic_dataset(fresh, splits=dict(test=3), image_size=(64, 96), seed=5,
                               progress=False)
    argv = [e2e_data['config'], str(checkpoint), '--solvers', 'tpe', 'random', 'gradient',
            '--objectives', 'bce', 'dice', 'segm_map', '--budget', '3', '--corr-points', '5',
            '--test', '--fresh', str(fresh), '--work-dir', str(work)]
    out, = compare.main(argv)
    # the gradient solver skips segm_map, which has no gradient
    assert out['name'] == 'run_iter_4' and set(out['runs']) == {
        f'{s}|{o}' for s in ('tpe', 'random', 'gradient') for o in ('bce', 'dice', 'segm_map')
    } - {'gradient|segm_map'}
    for run in out['runs'].values():
        ratio = run['ratio']
        assert len(ratio) == 3 and ratio[0] == 1.0  # the identity is evaluated first
        assert all(a >= b for a, b in zip(ratio, ratio[1:]))  # best so far
        assert 0.0 <= run['segm_best'] <= 100.0
    # the gradient search descends f from the identity
    assert out['runs']['gradient|bce']['ratio'][-1] < 1.0
    glob, local = out['correlation']['global'], out['correlation']['local']
    assert 3 <= glob['points'] <= 5 and set(glob['spearman']) == {'bce', 'dice'}
    assert local['points'] == 5  # the gradient's points: the identity, 2 + 2 steps
    for corr in (glob, local):
        assert all(v is None or -1.0 <= v <= 1.0 for v in corr['spearman'].values())
    assert glob['segm'][0] == local['segm'][0] == out['segm_identity']  # the identity first
    # the probe: every run's rho and the identity on the test split (true and
    # predicted boxes) and the fresh scenes; equal points share their values
    transfer = out['transfer']
    assert set(transfer) == {'test', 'fresh', 'test_predicted'}
    for split, points in transfer.items():
        assert set(points) == {'identity', *out['runs']}
        for key, point in points.items():
            assert 0.0 <= point['segm'] <= 100.0
            if split != 'test_predicted':
                assert set(point['f']) == {'bce', 'dice'}
            best = out['runs'].get(key, {}).get('best')
            if best == [1.0] * 16:
                assert point == points['identity']
    assert transfer['fresh']['identity']['f'] != transfer['test']['identity']['f']
    saved = json.loads((work / 'run_iter_4.json').read_text())
    assert saved['runs']['tpe|dice']['best_f'] == out['runs']['tpe|dice']['best_f']
    table = (work / 'results.md').read_text()
    assert '| gradient | dice |' in table and '| bce |' in table
    assert '| solver | objective | moved | D_val segm | D_val f | test segm | test f | ' \
           'fresh segm | fresh f | test_predicted segm |' in table
    assert (work / 'results.png').stat().st_size > 0
    capsys.readouterr()
    again, = compare.main(argv)  # the finished checkpoint is read back, not rerun
    assert again == saved and '[search_compare]' not in capsys.readouterr().out
