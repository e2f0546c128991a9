/** Files of the UI tests' Jupyter root. */
export const FILES: Record<string, string> = {
  'slow.sh':
    '#!/bin/bash\n#SWM name slow\nfor i in $(seq 1 12); do echo "line $i"; sleep 0.5; done\necho done >&2\n',
  'long.sh': '#!/bin/bash\n#SWM name long\necho started\nsleep 300\n',
  'quick.sh': '#!/bin/bash\necho quick\n',
  'params.ipynb': JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' },
      language_info: { name: 'python' }
    },
    cells: [
      {
        cell_type: 'code',
        id: 'params',
        metadata: { tags: ['parameters'] },
        execution_count: null,
        outputs: [],
        source: 'n = 2'
      },
      {
        cell_type: 'code',
        id: 'square',
        metadata: {},
        execution_count: null,
        outputs: [],
        source: "print(f'n squared is {n * n}')"
      }
    ]
  })
};
