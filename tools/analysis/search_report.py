"""Print a BiPA prompt search's trials per round and plot its optimisation history.

    python tools/analysis/search_report.py work_dirs/bipa_uiis/prompt_search.db \
        [--study-name prompt_search] [--out search_history.png]

The storage may also be given as an Optuna URL (``sqlite:///...``,
``postgresql://...``). The same file opens in optuna-dashboard.
"""
import argparse
import os.path as osp
from typing import Dict, List

import optuna
from optuna.trial import TrialState

from bipa.apis import best_trial, fail_reasons, load_rounds


def format_round(round_idx: int, study: optuna.Study) -> List[str]:
    lines = [f'round {round_idx} ({study.study_name}): {len(study.trials)} trials']
    best = getattr(best_trial(study), 'number', None)
    reasons = fail_reasons(study)
    for t in study.trials:
        weights = ' '.join(f'{t.params[k]:.3f}' for k in sorted(t.params))
        value = f'{t.value:.6f}' if t.value is not None else '-'
        reason = reasons.get(t.number, '')
        mark = '*' if t.number == best else ' '
        lines.append(f' {mark}{t.number:4d} {t.state.name:8s} f={value:>10s}  w=[{weights}]'
                     + (f'  ({reason})' if reason else ''))
    return lines


def plot_history(rounds: Dict[int, optuna.Study], out: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for round_idx, study in rounds.items():
        trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
        xs = [offset + t.number for t in trials]
        values = [t.value for t in trials]
        best = [min(values[:i + 1]) for i in range(len(values))]
        ax.scatter(xs, values, s=12, label=f'round {round_idx}: f')
        ax.step(xs, best, where='post', label=f'round {round_idx}: best')
        offset += len(study.trials)
    ax.set_xlabel('trial (all rounds)')
    ax.set_ylabel('f = mask BCE on D_val')
    ax.set_title('BiPA prompt search')
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> Dict[int, optuna.Study]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('storage', help='prompt_search.db or an Optuna storage URL')
    parser.add_argument('--study-name', default='prompt_search')
    parser.add_argument('--out', default=None,
                        help='PNG path (default: search_history.png beside the database)')
    args = parser.parse_args(argv)
    rounds = load_rounds(args.storage, args.study_name)
    for round_idx, study in rounds.items():
        print('\n'.join(format_round(round_idx, study)))
    out = args.out or osp.join(osp.dirname(osp.abspath(args.storage)) if '://' not in
                               args.storage else '.', 'search_history.png')
    plot_history(rounds, out)
    print(f'optimisation history saved to {out}')
    return rounds


if __name__ == '__main__':
    main()
