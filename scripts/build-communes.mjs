// Helper of scripts/build-communes: turns the installed
// @etalab/decoupage-administratif package into data/communes.tsv on stdout.
//
// Usage: node scripts/build-communes.mjs <package-dir> <command-for-header>
//
// Output: one header comment line, then one line per commune or municipal
// arrondissement, sorted by INSEE code (byte order), fields separated by a tab:
//   code  departement  postcodes (sorted, comma-separated)  name
// The script refuses data that would not load: missing fields, a tab or line
// break in a name, a postcode that is not five digits, a duplicate code, a code
// that does not start with its département, a kept commune without a postcode.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const [pkgDir, command] = process.argv.slice(2)
if (!pkgDir || !command) {
  console.error('usage: node build-communes.mjs <package-dir> <command>')
  process.exit(2)
}

const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
const communes = JSON.parse(readFileSync(join(pkgDir, 'data', 'communes.json'), 'utf8'))

const KEPT_TYPES = new Set(['commune-actuelle', 'arrondissement-municipal'])
// Metropolitan départements (two characters, Corsica as 2A/2B) and the
// overseas départements 971..976; the other overseas collectivities are out.
const KEPT_DEPARTEMENT = /^(?:[0-9][0-9]|2[AB]|97[1-6])$/

const fail = (message) => {
  console.error(`build-communes: ${message}`)
  process.exit(1)
}

const rows = []
const seen = new Set()
for (const c of communes) {
  if (!KEPT_TYPES.has(c.type)) continue
  if (typeof c.departement !== 'string') fail(`no departement: ${JSON.stringify(c)}`)
  if (!KEPT_DEPARTEMENT.test(c.departement)) continue
  if (c.departement === '20') fail(`commune ${c.code} in département 20 (Corsica is 2A/2B)`)
  if (typeof c.code !== 'string' || !/^[0-9][0-9AB][0-9]{3}$/.test(c.code)) {
    fail(`bad INSEE code: ${JSON.stringify(c.code)}`)
  }
  if (!c.code.startsWith(c.departement)) fail(`code ${c.code} not in its département ${c.departement}`)
  if (seen.has(c.code)) fail(`duplicate code ${c.code}`)
  seen.add(c.code)
  if (typeof c.nom !== 'string' || c.nom.trim() === '' || /[\t\r\n]/.test(c.nom)) {
    fail(`bad name for ${c.code}: ${JSON.stringify(c.nom)}`)
  }
  const postcodes = [...new Set(c.codesPostaux || [])].sort()
  if (postcodes.length === 0) fail(`commune ${c.code} ${c.nom} has no postcode`)
  for (const p of postcodes) {
    if (!/^[0-9]{5}$/.test(p)) fail(`bad postcode ${JSON.stringify(p)} for ${c.code}`)
  }
  rows.push([c.code, c.departement, postcodes.join(','), c.nom])
}

// Byte order, not locale order: "2A004" sorts between "29xxx" and "30xxx".
rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))

const header = `# ${pkg.name} ${pkg.version} (INSEE COG, La Poste postcodes; Licence Ouverte)` +
  ` | built by: ${command} | columns: code, departement, postcodes, name`
const lines = [header, ...rows.map((r) => r.join('\t'))]
process.stdout.write(lines.join('\n') + '\n')
