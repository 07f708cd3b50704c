{{/* Labels on every object: config/'s app.kubernetes.io/part-of, and Helm's own. */}}
{{- define "wakeway.labels" -}}
app.kubernetes.io/part-of: wakeway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* A component's selector labels: (list $ "interceptor"). */}}
{{- define "wakeway.selector" -}}
app.kubernetes.io/name: wakeway-{{ index . 1 }}
{{- end }}

{{/* A component's pod labels, as in config/: (list $ "interceptor"). */}}
{{- define "wakeway.podLabels" -}}
{{ include "wakeway.selector" . }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* A component object's labels: (list $ "interceptor"). */}}
{{- define "wakeway.componentLabels" -}}
{{ include "wakeway.podLabels" . }}
{{ include "wakeway.labels" (index . 0) }}
{{- end }}

{{/* The container's image and pull policy: (list $ .Values.interceptor.image). */}}
{{- define "wakeway.image" -}}
{{- $image := index . 1 -}}
image: {{ printf "%s:%s" $image.repository ($image.tag | default (index . 0).Chart.AppVersion) | quote }}
{{- with $image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/* The interceptor Service that bound HTTPRoute backendRefs name (namespace/name:port). */}}
{{- define "wakeway.interceptorService" -}}
{{ .Release.Namespace }}/wakeway-interceptor:8080
{{- end }}

{{/* The pod-level parts every component shares: pull secrets and the restricted security
context. */}}
{{- define "wakeway.podSecurity" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* The container-level security context every component shares (restricted level). */}}
{{- define "wakeway.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  capabilities:
    drop: [ALL]
{{- end }}

{{/* The route identity key's volume mount and volume (interceptor and operator). */}}
{{- define "wakeway.identityMount" -}}
volumeMounts:
  - name: route-identity
    mountPath: /etc/wakeway/route-identity
    readOnly: true
{{- end }}
{{- define "wakeway.identityVolume" -}}
volumes:
  # Created by the chart once (routeIdentity.create) or by you; pods wait until it exists.
  - name: route-identity
    secret:
      secretName: {{ .Values.routeIdentity.secretName }}
{{- end }}

{{/* A ServiceAccount for a component: (list $ "interceptor"). */}}
{{- define "wakeway.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: wakeway-{{ index . 1 }}
  namespace: {{ (index . 0).Release.Namespace }}
  labels:
    {{- include "wakeway.labels" (index . 0) | nindent 4 }}
automountServiceAccountToken: true
{{- end }}

{{/* A binding of a component's ServiceAccount: (list $ "ClusterRoleBinding" "ClusterRole"
"binding-and-role-name" "component"). */}}
{{- define "wakeway.binding" -}}
{{- $root := index . 0 -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ index . 1 }}
metadata:
  name: {{ index . 3 }}
  {{- if eq (index . 1) "RoleBinding" }}
  namespace: {{ $root.Release.Namespace }}
  {{- end }}
  labels:
    {{- include "wakeway.labels" $root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ index . 2 }}
  name: {{ index . 3 }}
subjects:
  - kind: ServiceAccount
    name: wakeway-{{ index . 4 }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}

{{/* Extra EnvVars, with each `value` made a string (`--set x.extraEnv[0].value=30` gives a
number, which the API server would refuse). */}}
{{- define "wakeway.extraEnv" -}}
{{- range . }}
- name: {{ .name }}
  {{- if hasKey . "value" }}
  value: {{ .value | toString | quote }}
  {{- end }}
  {{- with .valueFrom }}
  valueFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
