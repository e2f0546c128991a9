/** The code editor of a new job's script: JupyterLab's own editor with shell highlighting. */
import { CodeEditor, IEditorServices } from '@jupyterlab/codeeditor';
import { IDisposable } from '@lumino/disposable';

import { ScriptEditorFactory } from '../widgets/submitform';

/** MIME type of shell scripts in JupyterLab's language registry. */
export const SHELL_MIME = 'text/x-sh';

/** A factory of script editors on `services`. */
export function scriptEditor(services: IEditorServices): ScriptEditorFactory {
  return (host, text, changed): IDisposable => {
    const model = new CodeEditor.Model({ mimeType: SHELL_MIME });
    model.sharedModel.setSource(text);
    host.classList.add('swm-NewJob-codeEditor');
    const editor = services.factoryService.newInlineEditor({ host, model });
    model.sharedModel.changed.connect(() => changed(model.sharedModel.getSource()));
    return {
      get isDisposed(): boolean {
        return model.isDisposed;
      },
      dispose: () => {
        editor.dispose();
        model.dispose();
      }
    };
  };
}
