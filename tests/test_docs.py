"""README.md and docs/*.md: every relative link and image resolves, every
#anchor names a heading of its target (GitHub's slugs), and every docs page is
reachable from the README. Text only: nothing heavy is imported."""
import re
from collections import deque
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r'^\s*(```|~~~)')
INLINE_CODE = re.compile(r'`[^`]+`')
LINK = re.compile(r'!?\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HEADING = re.compile(r'^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$')


def pages() -> List[Path]:
    return [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))


def rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code (same line count)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            out.append('')
        else:
            out.append('' if fenced else line)
    return INLINE_CODE.sub(lambda m: re.sub(r'[^\n]', ' ', m.group()), '\n'.join(out))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: links reduced to their text,
    lowercased, characters other than letters, digits, spaces, hyphens and
    underscores dropped, spaces made hyphens."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading).strip().lower()
    text = ''.join(c for c in text if c.isalnum() or c in ' -_')
    return text.replace(' ', '-')


def anchors(path: Path) -> List[str]:
    """The anchors of a markdown file's headings (outside code fences), a
    repeated slug numbered -1, -2, ... as GitHub does."""
    seen: Dict[str, int] = {}
    out = []
    for line in prose(path.read_text(encoding='utf-8')).splitlines():
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f'{base}-{n}')
    return out


def links(path: Path) -> List[Tuple[int, str, str]]:
    """(line, text, target) of every relative link and image of a page."""
    text = prose(path.read_text(encoding='utf-8'))
    out = []
    for m in LINK.finditer(text):
        target = m.group(2)
        if re.match(r'(https?|mailto|ftp):', target, re.I):
            continue
        out.append((text.count('\n', 0, m.start()) + 1, m.group(1), target))
    return out


def broken(path: Path) -> List[str]:
    problems = []
    for line, text, target in links(path):
        where = f'{rel(path)}:{line}: [{text}]({target})'
        file_part, _, anchor = target.partition('#')
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f'{where}: {rel(dest)} does not exist')
            continue
        if anchor and dest.suffix == '.md':
            found = anchors(dest)
            if anchor not in found:
                near = [a for a in found if a.split('-')[0] == anchor.split('-')[0]][:5]
                problems.append(f'{where}: no heading of {rel(dest)} has the anchor '
                                f'#{anchor} (headings with that start: {near or "none"})')
    return problems


def test_links_and_anchors_resolve():
    problems = [p for page in pages() for p in broken(page)]
    assert not problems, 'broken links:\n' + '\n'.join(problems)


def test_every_docs_page_is_reachable_from_the_readme():
    start = (ROOT / 'README.md').resolve()
    reached, todo = {start}, deque([start])
    while todo:
        page = todo.popleft()
        for _, _, target in links(page):
            file_part = target.partition('#')[0]
            dest = (page.parent / file_part).resolve() if file_part else page
            if dest.suffix == '.md' and dest.exists() and dest not in reached:
                reached.add(dest)
                todo.append(dest)
    orphans = [rel(p) for p in pages() if p.resolve() not in reached]
    assert not orphans, f'docs pages no link from README.md leads to: {orphans}'


def test_slugs_follow_github():
    assert slug("Fidelity: the paper, the authors' code and this project") == \
        'fidelity-the-paper-the-authors-code-and-this-project'
    assert slug("Table 5's N_g and FAI vs sum") == 'table-5s-n_g-and-fai-vs-sum'
    assert slug('BiPA on SAM 2.1') == 'bipa-on-sam-21'
    assert slug('Over seeds: `reproduce.py`') == 'over-seeds-reproducepy'
    assert slug('[Linked](x.md) heading') == 'linked-heading'


def test_repeated_headings_and_code_fences(tmp_path):
    page = tmp_path / 'p.md'
    page.write_text('# A\n\n## Setup\n\n```\n## Setup\n```\n\n### Setup\n\n'
                    '[ok](#setup-1) [bad](#setup-2) `[code](#nowhere)`\n')
    assert anchors(page) == ['a', 'setup', 'setup-1']
    problems = broken(page)
    assert len(problems) == 1 and '[bad](#setup-2)' in problems[0], problems
