"""The report's page, written twice from one list of blocks: `report.md` and `report.html`.

A `Page` collects headings, paragraphs, tables, figures (PNG files next to the page) and image
strips (thumbnails next to the page, each with a caption). `markdown()` renders it as Markdown;
`html()` as a standalone HTML page that needs nothing but the files beside it (no scripts, no
fonts, no network), so it opens offline in any browser. Every piece of text that reaches the
HTML — file names, dataset names, config strings, table cells — is escaped, so a photo named
`<img src=x onerror=alert(1)>.jpg` shows as that text. `write` writes both files.
"""

import dataclasses
import html
import os
from collections.abc import Sequence

from memjax.experiments import tables

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
.strip { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 0.5em 0 1.5em; }
.strip figure { width: 140px; margin: 0; font-size: 0.75em; overflow-wrap: anywhere; }
.strip img { width: 128px; height: 128px; }
"""


@dataclasses.dataclass(frozen=True)
class Thumb:
  """One image of a strip: `file` relative to the page, and its caption lines."""

  file: str
  caption: Sequence[str]


class Page:
  """Blocks of a report page, in order; `markdown()` and `html()` render them."""

  def __init__(self, title: str):
    self.title = title
    self.blocks: list[tuple] = []

  def heading(self, text: str) -> None:
    self.blocks.append(('heading', text))

  def text(self, text: str) -> None:
    self.blocks.append(('text', text))

  def table(self, header: Sequence, rows: Sequence[Sequence], caption: str = '') -> None:
    self.blocks.append(('table', [str(h) for h in header], [[str(c) for c in r] for r in rows]))
    if caption:
      self.text(caption)

  def figure(self, file: str, alt: str) -> None:
    """A PNG at `file` (relative to the page)."""
    self.blocks.append(('figure', file, alt))

  def strip(self, title: str, thumbs: Sequence[Thumb]) -> None:
    """A row of thumbnails with captions (the most and least memorable images)."""
    self.blocks.append(('strip', title, list(thumbs)))

  def markdown(self) -> str:
    lines = [f'# {self.title}', '']
    for block in self.blocks:
      kind = block[0]
      if kind == 'heading':
        lines += [f'## {block[1]}', '']
      elif kind == 'text':
        lines += [block[1], '']
      elif kind == 'table':
        header, rows = block[1], block[2]
        lines.append('| ' + ' | '.join(header) + ' |')
        lines.append('|' + ' --- |' * len(header))
        lines += ['| ' + ' | '.join(c.replace('|', '\\|') for c in r) + ' |' for r in rows]
        lines.append('')
      elif kind == 'figure':
        lines += [f'![{block[2]}]({block[1]})', '']
      else:  # strip
        lines += [f'**{block[1]}**', '']
        lines += [f'![{" ".join(t.caption)}]({t.file})' for t in block[2]]
        lines.append('')
    return '\n'.join(lines)

  def html(self) -> str:
    e = html.escape  # quote=True: safe inside attributes too
    out = [
      '<!DOCTYPE html>',
      '<html lang="en"><head><meta charset="utf-8">',
      f'<title>{e(self.title)}</title>',
      f'<style>{_STYLE}</style></head><body>',
      f'<h1>{e(self.title)}</h1>',
    ]
    for block in self.blocks:
      kind = block[0]
      if kind == 'heading':
        out.append(f'<h2>{e(block[1])}</h2>')
      elif kind == 'text':
        out.append(f'<p>{e(block[1])}</p>')
      elif kind == 'table':
        head = ''.join(f'<th>{e(h)}</th>' for h in block[1])
        body = ''.join('<tr>' + ''.join(f'<td>{e(c)}</td>' for c in r) + '</tr>' for r in block[2])
        out.append(f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
      elif kind == 'figure':
        out.append(
          f'<figure><img src="{e(block[1])}" alt="{e(block[2])}">'
          f'<figcaption>{e(block[2])}</figcaption></figure>'
        )
      else:  # strip
        thumbs = ''.join(
          f'<figure><img src="{e(t.file)}" alt="{e(t.caption[0])}"><figcaption>'
          + '<br>'.join(e(line) for line in t.caption)
          + '</figcaption></figure>'
          for t in block[2]
        )
        out.append(f'<h3>{e(block[1])}</h3><div class="strip">{thumbs}</div>')
    out.append('</body></html>')
    return '\n'.join(out) + '\n'


def write(page: Page, directory: str) -> dict[str, str]:
  """Writes `page` as `directory/report.md` and `directory/report.html` (atomic, process 0).

  Returns:
    Their paths, as `report` and `html`.
  """
  written = {
    'report': os.path.join(directory, 'report.md'),
    'html': os.path.join(directory, 'report.html'),
  }
  tables.write_text(written['report'], page.markdown())
  tables.write_text(written['html'], page.html())
  return written
