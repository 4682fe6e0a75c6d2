/** Saves what a webview exports (chart SVG/PNG, data CSV/JSON) where the user chooses. */
import * as vscode from 'vscode';

const FILTERS: Record<string, Record<string, string[]>> = {
  svg: { 'SVG image': ['svg'] },
  png: { 'PNG image': ['png'] },
  csv: { CSV: ['csv'] },
  json: { JSON: ['json'] },
};

export async function saveExport(m: { format: 'svg' | 'png' | 'csv' | 'json'; name: string; data: string }): Promise<void> {
  const safeName = m.name.replace(/[^\w.-]+/g, '-').slice(0, 80) || 'moe-scope-export';
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  const uri = await vscode.window.showSaveDialog({
    defaultUri: folder ? vscode.Uri.joinPath(folder, `${safeName}.${m.format}`) : undefined,
    filters: FILTERS[m.format],
    saveLabel: `Export ${m.format.toUpperCase()}`,
  });
  if (!uri) return;
  const bytes = m.format === 'png' ? Buffer.from(m.data.replace(/^data:image\/png;base64,/, ''), 'base64') : Buffer.from(m.data, 'utf8');
  await vscode.workspace.fs.writeFile(uri, bytes);
  void vscode.window.showInformationMessage(`MoE Scope: exported ${vscode.workspace.asRelativePath(uri)}`);
}
