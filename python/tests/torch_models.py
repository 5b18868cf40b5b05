"""Minimal reimplementations of the third-party modules moka's PyTorch
importer recognises, for tests on a machine without HF transformers, KAT or
timm.

Class names, attribute names and forward computations follow HF transformers
4.4x-4.5x (``MixtralSparseMoeBlock``, ``MixtralBlockSparseTop2MLP``,
``DeepseekV3MoE``, ``DeepseekV3TopkRouter``, ``DeepseekV3MLP``) and KAT
(``KAT_Group``, the ``KAN`` feed-forward block of ``katransformer.py``) and
timm (``Mlp``).
Deviations, each needed to run the modules in float64 for references, are
marked where they are.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Config:
    """A stand-in for a transformers configuration: attributes from
    keywords."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def mixtral_config(hidden_size, intermediate_size, num_local_experts,
                   num_experts_per_tok, router_jitter_noise=0.0):
    return Config(hidden_size=hidden_size,
                  intermediate_size=intermediate_size,
                  num_local_experts=num_local_experts,
                  num_experts_per_tok=num_experts_per_tok,
                  router_jitter_noise=router_jitter_noise,
                  hidden_act="silu")


def deepseek_v3_config(hidden_size, moe_intermediate_size, n_routed_experts,
                       num_experts_per_tok, n_group, topk_group,
                       n_shared_experts=1, norm_topk_prob=True,
                       routed_scaling_factor=2.5):
    return Config(hidden_size=hidden_size,
                  intermediate_size=4 * hidden_size,
                  moe_intermediate_size=moe_intermediate_size,
                  n_routed_experts=n_routed_experts,
                  num_experts_per_tok=num_experts_per_tok,
                  n_group=n_group, topk_group=topk_group,
                  n_shared_experts=n_shared_experts,
                  norm_topk_prob=norm_topk_prob,
                  routed_scaling_factor=routed_scaling_factor,
                  hidden_act="silu")


# --- HF transformers: Mixtral ----------------------------------------------


class MixtralBlockSparseTop2MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ffn_dim = config.intermediate_size
        self.hidden_dim = config.hidden_size
        self.w1 = nn.Linear(self.hidden_dim, self.ffn_dim, bias=False)
        self.w2 = nn.Linear(self.ffn_dim, self.hidden_dim, bias=False)
        self.w3 = nn.Linear(self.hidden_dim, self.ffn_dim, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, hidden_states):
        current = self.act_fn(self.w1(hidden_states)) * self.w3(hidden_states)
        return self.w2(current)


class MixtralSparseMoeBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.hidden_dim = config.hidden_size
        self.ffn_dim = config.intermediate_size
        self.num_experts = config.num_local_experts
        self.top_k = config.num_experts_per_tok
        self.gate = nn.Linear(self.hidden_dim, self.num_experts, bias=False)
        self.experts = nn.ModuleList([MixtralBlockSparseTop2MLP(config)
                                      for _ in range(self.num_experts)])
        self.jitter_noise = config.router_jitter_noise

    def forward(self, hidden_states):
        batch_size, sequence_length, hidden_dim = hidden_states.shape
        if self.training and self.jitter_noise > 0:
            hidden_states *= torch.empty_like(hidden_states).uniform_(
                1.0 - self.jitter_noise, 1.0 + self.jitter_noise)
        hidden_states = hidden_states.view(-1, hidden_dim)
        router_logits = self.gate(hidden_states)
        routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        routing_weights, selected_experts = torch.topk(routing_weights,
                                                       self.top_k, dim=-1)
        routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
        routing_weights = routing_weights.to(hidden_states.dtype)
        final_hidden_states = torch.zeros(
            (batch_size * sequence_length, hidden_dim),
            dtype=hidden_states.dtype, device=hidden_states.device)
        expert_mask = F.one_hot(selected_experts,
                                num_classes=self.num_experts).permute(2, 1, 0)
        expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        for expert_idx in expert_hit:
            expert_layer = self.experts[expert_idx]
            idx, top_x = torch.where(expert_mask[expert_idx].squeeze(0))
            current_state = hidden_states[None, top_x].reshape(-1, hidden_dim)
            current_hidden_states = (expert_layer(current_state) *
                                     routing_weights[top_x, idx, None])
            final_hidden_states.index_add_(
                0, top_x, current_hidden_states.to(hidden_states.dtype))
        final_hidden_states = final_hidden_states.reshape(
            batch_size, sequence_length, hidden_dim)
        return final_hidden_states, router_logits


# --- HF transformers: DeepSeek-V3 --------------------------------------------


class DeepseekV3MLP(nn.Module):
    def __init__(self, config, hidden_size=None, intermediate_size=None):
        super().__init__()
        self.config = config
        self.hidden_size = (config.hidden_size if hidden_size is None
                            else hidden_size)
        self.intermediate_size = (config.intermediate_size
                                  if intermediate_size is None
                                  else intermediate_size)
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size,
                                   bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size,
                                 bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size,
                                   bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) *
                              self.up_proj(x))


class DeepseekV3TopkRouter(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.top_k = config.num_experts_per_tok
        self.n_routed_experts = config.n_routed_experts
        self.routed_scaling_factor = config.routed_scaling_factor
        self.n_group = config.n_group
        self.topk_group = config.topk_group
        self.norm_topk_prob = config.norm_topk_prob
        self.weight = nn.Parameter(torch.empty((self.n_routed_experts,
                                                config.hidden_size)))
        self.register_buffer("e_score_correction_bias",
                             torch.zeros(self.n_routed_experts))

    @torch.no_grad()
    def get_topk_indices(self, scores):
        scores_for_choice = (scores.view(-1, self.n_routed_experts) +
                             self.e_score_correction_bias.unsqueeze(0))
        group_scores = (
            scores_for_choice.view(-1, self.n_group,
                                   self.n_routed_experts // self.n_group)
            .topk(2, dim=-1)[0].sum(dim=-1))
        group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1,
                               sorted=False)[1]
        group_mask = torch.zeros_like(group_scores)
        group_mask.scatter_(1, group_idx, 1)
        score_mask = (
            group_mask.unsqueeze(-1)
            .expand(-1, self.n_group, self.n_routed_experts // self.n_group)
            .reshape(-1, self.n_routed_experts))
        scores_for_choice = scores_for_choice.masked_fill(~score_mask.bool(),
                                                          0.0)
        return torch.topk(scores_for_choice, k=self.top_k, dim=-1,
                          sorted=False)[1]

    def forward(self, hidden_states):
        hidden_states = hidden_states.view(-1, self.config.hidden_size)
        router_logits = F.linear(hidden_states.type(torch.float32),
                                 self.weight.type(torch.float32))
        scores = router_logits.sigmoid()
        topk_indices = self.get_topk_indices(scores)
        topk_weights = scores.gather(1, topk_indices)
        if self.norm_topk_prob:
            denominator = topk_weights.sum(dim=-1, keepdim=True) + 1e-20
            topk_weights /= denominator
        topk_weights = topk_weights * self.routed_scaling_factor
        return topk_indices, topk_weights


class DeepseekV3MoE(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.experts = nn.ModuleList([
            DeepseekV3MLP(config,
                          intermediate_size=config.moe_intermediate_size)
            for _ in range(config.n_routed_experts)])
        self.gate = DeepseekV3TopkRouter(config)
        self.shared_experts = DeepseekV3MLP(
            config=config, intermediate_size=(config.moe_intermediate_size *
                                              config.n_shared_experts))

    def moe(self, hidden_states, topk_indices, topk_weights):
        # Deviation: HF allocates this buffer in topk_weights' dtype (the
        # router's float32), so index_add_ of a float64 model's expert
        # outputs fails; the promoted type is the same in float32 and lets
        # the block run in float64.
        final_hidden_states = torch.zeros_like(
            hidden_states,
            dtype=torch.promote_types(hidden_states.dtype,
                                      topk_weights.dtype))
        expert_mask = F.one_hot(topk_indices, num_classes=len(self.experts))
        expert_mask = expert_mask.permute(2, 0, 1)
        for expert_idx in range(len(self.experts)):
            expert = self.experts[expert_idx]
            mask = expert_mask[expert_idx]
            token_indices, weight_indices = torch.where(mask)
            if token_indices.numel() > 0:
                expert_weights = topk_weights[token_indices, weight_indices]
                expert_input = hidden_states[token_indices]
                expert_output = expert(expert_input)
                weighted_output = expert_output * expert_weights.unsqueeze(-1)
                final_hidden_states.index_add_(0, token_indices,
                                               weighted_output)
        return final_hidden_states.type(hidden_states.dtype)

    def forward(self, hidden_states):
        residuals = hidden_states
        orig_shape = hidden_states.shape
        topk_indices, topk_weights = self.gate(hidden_states)
        hidden_states = hidden_states.view(-1, hidden_states.shape[-1])
        hidden_states = self.moe(hidden_states, topk_indices,
                                 topk_weights).view(*orig_shape)
        return hidden_states + self.shared_experts(residuals)


# --- KAT ---------------------------------------------------------------------


def rational_1dgroup(x, weight_numerator, weight_denominator, group):
    """KAT's group-rational function as its CUDA and Triton kernels compute
    it: P(x) / (1 + sum_j |b_j| |x|^j), channel c in group c // (D / group).
    (KAT's pure-torch CPU fallback, Rational_CUDA_A_1DGroup, uses x^j instead
    of |x|^j in the denominator; the kernels, which trained the published
    models, and moka's kan.rational use |x|^j.)"""
    d = x.shape[-1]
    z = x.reshape(-1, group, d // group)
    a = weight_numerator.reshape(group, 1, -1)
    b = weight_denominator.abs().reshape(group, 1, -1)
    zt = z.transpose(0, 1)  # [group, rows, D / group]
    p = torch.zeros_like(zt)
    for i in reversed(range(a.shape[-1])):
        p = p * zt + a[..., i:i + 1]
    q = torch.zeros_like(zt)
    for j in reversed(range(b.shape[-1])):
        q = (q + b[..., j:j + 1]) * zt.abs()
    return (p / (1.0 + q)).transpose(0, 1).reshape(x.shape)


class KAT_Group(nn.Module):
    """KAT's group-rational activation: a numerator shared by all groups
    (``[1, m + 1]``, KAT's default) or one per group, and one denominator
    per group (``[num_groups, n]``)."""

    def __init__(self, num_groups=8, order=(5, 4), shared_numerator=True):
        super().__init__()
        self.order = tuple(order)
        self.num_groups = num_groups
        m, n = self.order
        rows = 1 if shared_numerator else num_groups
        self.weight_numerator = nn.Parameter(torch.randn(rows, m + 1) * 0.5)
        self.weight_denominator = nn.Parameter(
            torch.randn(num_groups, n) * 0.5)

    def forward(self, input):
        assert input.dim() in (2, 3), \
            "Input tensor must be 3D (batch, length, channels) or 2D"
        weight_numerator = self.weight_numerator
        if weight_numerator.shape[0] == 1:
            # KAT repeats the shared numerator over the groups.
            weight_numerator = weight_numerator.repeat(self.num_groups, 1)
        return rational_1dgroup(input, weight_numerator,
                                self.weight_denominator, self.num_groups)

    def extra_repr(self):
        return f"num_groups={self.num_groups}, order={self.order}"


class KAN(nn.Module):
    """KAT's feed-forward block (katransformer.py): act1 -> fc1 -> act2 ->
    fc2, with dropouts; `norm` is created but, as in KAT, not applied."""

    def __init__(self, in_features, hidden_features=None, out_features=None,
                 num_groups=8, order=(5, 4), bias=True, drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act1 = KAT_Group(num_groups, order)
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.Identity()
        self.act2 = KAT_Group(num_groups, order)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x = self.act1(x)
        x = self.drop1(x)
        x = self.fc1(x)
        x = self.act2(x)
        x = self.drop2(x)
        x = self.fc2(x)
        return x


# --- timm ------------------------------------------------------------------


class Mlp(nn.Module):
    """timm.layers.Mlp: fc1 -> act -> drop1 -> norm -> fc2 -> drop2."""

    def __init__(self, in_features, hidden_features=None, out_features=None,
                 act_layer=nn.GELU, norm_layer=None, bias=True, drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.norm = (norm_layer(hidden_features) if norm_layer is not None
                     else nn.Identity())
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop1(x)
        x = self.norm(x)
        x = self.fc2(x)
        x = self.drop2(x)
        return x
